package controlapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

// Limits of request values.
const (
	// maxWeight is the largest target weight (the registry's limit).
	maxWeight = registry.MaxWeight
	// maxDrainSecs is the longest drain timeout: 7 days.
	maxDrainSecs = 7 * 24 * 3600
	// maxTargets is the most targets one request may list.
	maxTargets = 10000
)

// readBody reads the request body, at most max bytes. A body with a
// Content-Type other than application/json is refused (415): with the
// cross-origin checks, it keeps browsers' form posts out.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, newError(http.StatusUnsupportedMediaType, "Content-Type %q is not supported: send JSON with Content-Type: application/json", ct)
		}
	}
	if r.ContentLength > max {
		return nil, newError(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", max)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newError(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", max)
		}
		return nil, newError(http.StatusBadRequest, "reading the request body: %v", err)
	}
	return data, nil
}

// targetInput is a target as a request gives it.
type targetInput struct {
	// Address is host:port.
	Address string `json:"address"`
	// Weight is 1-1048576 (default 1).
	Weight int `json:"weight"`
}

// createRequest is the body of POST /api/v1/upstreams.
type createRequest struct {
	// ID is the new upstream's id.
	ID string `json:"id"`
	// Targets are its targets (default none).
	Targets []targetInput `json:"targets"`
}

// fieldFunc decodes the value of one object member; path names it.
type fieldFunc func(raw json.RawMessage, path string) error

// parseValue checks that data is exactly one JSON value, with nothing but
// white space after it, and returns it.
func parseValue(data []byte) (json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, newError(http.StatusBadRequest, "the request body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, newError(http.StatusBadRequest, "invalid JSON: unexpected data after the JSON value at byte %d", dec.InputOffset())
	}
	return raw, nil
}

// syntaxError turns a JSON decoding error into a 400.
func syntaxError(err error) *apiError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return newError(http.StatusBadRequest, "invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return newError(http.StatusBadRequest, "invalid JSON: unexpected end of the body")
	}
	return newError(http.StatusBadRequest, "invalid JSON: %v", err)
}

// decodeObject decodes raw as a JSON object, calling fields[key] for each
// member. Unknown and repeated members are refused, naming them. Member
// names are matched exactly (encoding/json would ignore case).
func decodeObject(raw json.RawMessage, path string, fields map[string]fieldFunc) error {
	if len(raw) == 0 || raw[0] != '{' {
		return fieldError(path, "%s must be a JSON object", describe(path))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return syntaxError(err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		key, _ := tok.(string)
		name := join(path, key)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return syntaxError(err)
		}
		f, ok := fields[key]
		if !ok {
			return fieldError(name, "unknown field %q", name)
		}
		if seen[key] {
			return fieldError(name, "field %q is given twice", name)
		}
		seen[key] = true
		if err := f(value, name); err != nil {
			return err
		}
	}
	return nil
}

// join returns the path of member key of path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names a value in messages.
func describe(path string) string {
	if path == "" {
		return "the request body"
	}
	return path
}

// decodeString decodes a JSON string.
func decodeString(raw json.RawMessage, path string) (string, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fieldError(path, "%s must be a string", path)
	}
	return s, nil
}

// decodeInt decodes a JSON integer in [min, max].
func decodeInt(raw json.RawMessage, path string, min, max int64) (int64, error) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < min || n > max {
		return 0, fieldError(path, "%s must be an integer from %d to %d", path, min, max)
	}
	return n, nil
}

// decodeBool decodes a JSON boolean.
func decodeBool(raw json.RawMessage, path string) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fieldError(path, "%s must be true or false", path)
}

// decodeArray decodes a JSON array, calling elem for each element.
func decodeArray(raw json.RawMessage, path string, max int, elem fieldFunc) error {
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return fieldError(path, "%s must be an array", path)
	}
	if len(items) > max {
		return fieldError(path, "%s has %d elements; at most %d are allowed", path, len(items), max)
	}
	for i, item := range items {
		if err := elem(item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// required reports the first of names that was not seen.
func required(path string, present map[string]bool, names ...string) error {
	for _, n := range names {
		if !present[n] {
			name := join(path, n)
			return fieldError(name, "%s is required", name)
		}
	}
	return nil
}

// targetFields returns the decoders of a target object.
func targetFields(t *targetInput, present map[string]bool) map[string]fieldFunc {
	return map[string]fieldFunc{
		"address": func(raw json.RawMessage, path string) (err error) {
			present["address"] = true
			if t.Address, err = decodeString(raw, path); err != nil {
				return err
			}
			return validateAddress(t.Address, path)
		},
		"weight": func(raw json.RawMessage, path string) error {
			present["weight"] = true
			n, err := decodeInt(raw, path, 1, maxWeight)
			t.Weight = int(n)
			return err
		},
	}
}

// decodeTarget decodes one target object at path.
func decodeTarget(raw json.RawMessage, path string) (targetInput, error) {
	t := targetInput{Weight: 1}
	present := map[string]bool{}
	if err := decodeObject(raw, path, targetFields(&t, present)); err != nil {
		return t, err
	}
	return t, required(path, present, "address")
}

// decodeTargetList decodes an array of targets; addresses must be
// distinct.
func decodeTargetList(raw json.RawMessage, path string) ([]targetInput, error) {
	out := []targetInput{}
	seen := map[string]int{}
	err := decodeArray(raw, path, maxTargets, func(item json.RawMessage, p string) error {
		t, err := decodeTarget(item, p)
		if err != nil {
			return err
		}
		if j, dup := seen[t.Address]; dup {
			return fieldError(p+".address", "%s.address %q repeats %s[%d].address", p, t.Address, path, j)
		}
		seen[t.Address] = len(out)
		out = append(out, t)
		return nil
	})
	return out, err
}

// decodeCreate decodes the body of POST /api/v1/upstreams.
func decodeCreate(data []byte) (createRequest, error) {
	req := createRequest{Targets: []targetInput{}}
	raw, err := parseValue(data)
	if err != nil {
		return req, err
	}
	present := map[string]bool{}
	err = decodeObject(raw, "", map[string]fieldFunc{
		"id": func(raw json.RawMessage, path string) (err error) {
			present["id"] = true
			if req.ID, err = decodeString(raw, path); err != nil {
				return err
			}
			return validateID(req.ID, path)
		},
		"targets": func(raw json.RawMessage, path string) (err error) {
			req.Targets, err = decodeTargetList(raw, path)
			return err
		},
	})
	if err != nil {
		return req, err
	}
	return req, required("", present, "id")
}

// decodeTargets decodes the body of PUT /api/v1/upstreams/{id}/targets.
func decodeTargets(data []byte) ([]targetInput, error) {
	raw, err := parseValue(data)
	if err != nil {
		return nil, err
	}
	var out []targetInput
	present := map[string]bool{}
	err = decodeObject(raw, "", map[string]fieldFunc{
		"targets": func(raw json.RawMessage, path string) (err error) {
			present["targets"] = true
			out, err = decodeTargetList(raw, path)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	return out, required("", present, "targets")
}

// decodeNewTarget decodes the body of POST
// /api/v1/upstreams/{id}/targets.
func decodeNewTarget(data []byte) (targetInput, error) {
	raw, err := parseValue(data)
	if err != nil {
		return targetInput{}, err
	}
	return decodeTarget(raw, "")
}

// decodePatch decodes the body of PATCH
// /api/v1/upstreams/{id}/targets/{address}: weight and/or state.
func decodePatch(data []byte) (registry.TargetPatch, error) {
	var p registry.TargetPatch
	raw, err := parseValue(data)
	if err != nil {
		return p, err
	}
	err = decodeObject(raw, "", map[string]fieldFunc{
		"weight": func(raw json.RawMessage, path string) error {
			n, err := decodeInt(raw, path, 1, maxWeight)
			w := int(n)
			p.Weight = &w
			return err
		},
		"state": func(raw json.RawMessage, path string) error {
			s, err := decodeString(raw, path)
			if err != nil {
				return err
			}
			st := registry.State(s)
			if st != registry.StateActive && st != registry.StateDraining {
				return fieldError(path, "state must be %q or %q", registry.StateActive, registry.StateDraining)
			}
			p.State = &st
			return nil
		},
	})
	if err != nil {
		return p, err
	}
	if p.Weight == nil && p.State == nil {
		return p, newError(http.StatusBadRequest, "give weight and/or state")
	}
	return p, nil
}

// decodeDrain decodes the optional body of the drain endpoints: nothing,
// {} or {"timeout_secs": N}. 0 (or nothing) drains without deadline.
func decodeDrain(data []byte) (time.Duration, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return 0, nil
	}
	raw, err := parseValue(data)
	if err != nil {
		return 0, err
	}
	var secs int64
	err = decodeObject(raw, "", map[string]fieldFunc{
		"timeout_secs": func(raw json.RawMessage, path string) (err error) {
			secs, err = decodeInt(raw, path, 0, maxDrainSecs)
			return err
		},
	})
	return time.Duration(secs) * time.Second, err
}

// decodeRoute decodes the body of PUT /api/v1/routes/{id}/enabled.
func decodeRoute(data []byte) (bool, error) {
	raw, err := parseValue(data)
	if err != nil {
		return false, err
	}
	var enabled, present bool
	err = decodeObject(raw, "", map[string]fieldFunc{
		"enabled": func(raw json.RawMessage, path string) (err error) {
			present = true
			enabled, err = decodeBool(raw, path)
			return err
		},
	})
	if err != nil {
		return false, err
	}
	if !present {
		return false, fieldError("enabled", "enabled is required")
	}
	return enabled, nil
}

// validateID checks the id of an upstream created through the API with
// the registry's rule.
func validateID(id, path string) error {
	return registryFieldError(registry.ValidateID(id), path)
}

// validateAddress checks a target address with the registry's rule.
func validateAddress(addr, path string) error {
	return registryFieldError(registry.ValidateAddress(addr), path)
}

// registryFieldError turns a registry validation error into a 400 about
// the input field at path.
func registryFieldError(err error, path string) error {
	var ie *registry.InvalidError
	if errors.As(err, &ie) {
		return fieldError(path, "%s %q: %s", path, ie.Value, ie.Reason)
	}
	return err
}
