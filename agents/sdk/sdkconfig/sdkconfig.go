// Package sdkconfig decodes the JSON `config { }` block of an agent or a
// WASM plugin strictly, with errors that tell a KDL user what to write.
// It depends on the standard library only, so WASM guests (GOOS=wasip1)
// use it as well as agents (agents/sdk.DecodeConfig,
// examples/plugins/sdk.DecodeConfig).
//
// The KDL adapter turns `allow "/api" "/ok"` into a list but `allow
// "/api"` into a single string; a one-element list is written with a
// `(list)` type annotation: `allow (list)"/api"`. A decoder that ignored
// the mismatch would leave the list empty — and a plugin that allows only
// listed paths would then block everything. Decode refuses it instead,
// so that the mistake fails the load (WASM) or the agent's handshake.
package sdkconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Decode decodes raw into v (a pointer to a struct or map). Empty input
// and JSON null leave v unchanged. Unknown keys, a value of the wrong
// type and trailing data are errors naming the key.
func Decode(raw []byte, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explain(err)
	}
	if dec.More() {
		return errors.New("config: trailing data after the JSON value")
	}
	return nil
}

// explain rewrites a decoding error for the people who wrote the KDL.
func explain(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		key := te.Field
		if key == "" {
			key = "(top level)"
		}
		if te.Type != nil && (te.Type.Kind() == reflect.Slice || te.Type.Kind() == reflect.Array) && te.Value != "array" {
			return fmt.Errorf("config key %q: a list is expected, got a single %s; in KDL a one-element list is written with (list): %s (list)\"…\"", key, te.Value, lastKey(key))
		}
		return fmt.Errorf("config key %q: got %s, want %s", key, jsonName(te.Value), kindName(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("config: not valid JSON at byte %d: %v", se.Offset, err)
	}
	// DisallowUnknownFields: `json: unknown field "x"`.
	return fmt.Errorf("config: %v", err)
}

// lastKey is the last element of a dotted field path.
func lastKey(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return path[i+1:]
		}
	}
	return path
}

// jsonName names a JSON value kind with its article.
func jsonName(v string) string {
	switch v {
	case "array":
		return "a list"
	case "object":
		return "a block (object)"
	case "":
		return "a value"
	}
	return "a " + v
}

// kindName names a Go type in JSON terms.
func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "a block (object)"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return t.String()
}
