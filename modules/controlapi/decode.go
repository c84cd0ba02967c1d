package controlapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
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

// The tags of request types, read by the codec and the OpenAPI
// generator:
//
//	json:"name"        the member name, matched exactly ("-": not decoded)
//	api:"required"     the member must be present
//	min:"N" max:"N"    integers: the range (default: the Go type's);
//	                   arrays: max is the most elements
//	enum:"a,b"         strings: the values allowed
//	default:"N"        integers: the value when the member is absent
//	doc:"…"            the description (default: the field's doc comment)
//	pattern, example   strings: for the OpenAPI document only
//	maxLength:"N"      strings: for the OpenAPI document only
//
// A codec is built once per endpoint, when New builds the endpoint table.
//
// A type with a Validate(path string) error method is checked with it
// once decoded: a scalar as soon as it is, a struct or array after all
// of its members.

// validator is a request type that checks itself; path names it in
// errors.
type validator interface {
	Validate(path string) error
}

// codecKind is the JSON shape a codec decodes.
type codecKind int

// The codec kinds.
const (
	kindString codecKind = iota
	kindInt
	kindBool
	kindPointer
	kindArray
	kindObject
)

// codec decodes one Go type strictly from JSON, with the limits of the
// struct field it is the type of.
type codec struct {
	typ  reflect.Type
	kind codecKind
	// min and max bound integers; max bounds the elements of arrays.
	min, max int64
	// enum lists the values a string may have.
	enum []string
	// elem is the codec of a pointer's or an array's element.
	elem *codec
	// fields are an object's members, by exact name, and in order.
	fields map[string]*fieldCodec
	order  []*fieldCodec
	// validate is set when the type has a Validate method.
	validate bool
}

// fieldCodec is a struct field of an object codec.
type fieldCodec struct {
	name     string
	index    int
	required bool
	// def is the default of an integer field, if it has one.
	def *int64
	*codec
}

// newCodec returns the codec of t, a struct type of a request body. An
// unsupported type or a malformed tag is a programming error: it panics
// (the endpoint table is built, and this runs, at New, in every test).
func newCodec(t reflect.Type) *codec {
	return compileCodec(t, reflect.StructTag(""), map[reflect.Type]*codec{})
}

// compileCodec builds the codec of t for a field with tag. Structs are
// shared through seen.
func compileCodec(t reflect.Type, tag reflect.StructTag, seen map[reflect.Type]*codec) *codec {
	c := &codec{typ: t, validate: t.Implements(reflect.TypeFor[validator]())}
	switch t.Kind() {
	case reflect.String:
		c.kind = kindString
		if e := tag.Get("enum"); e != "" {
			c.enum = strings.Split(e, ",")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		c.kind = kindInt
		c.min, c.max = intLimits(t, tag)
	case reflect.Bool:
		c.kind = kindBool
	case reflect.Pointer:
		c.kind = kindPointer
		c.elem = compileCodec(t.Elem(), tag, seen)
	case reflect.Slice:
		c.kind = kindArray
		c.max = math.MaxInt
		if m := tag.Get("max"); m != "" {
			c.max = mustInt(t, "max", m)
		}
		c.elem = compileCodec(t.Elem(), "", seen)
	case reflect.Struct:
		if s, ok := seen[t]; ok {
			return s
		}
		seen[t] = c
		c.kind = kindObject
		c.fields = map[string]*fieldCodec{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fc := &fieldCodec{name: name, index: i, required: f.Tag.Get("api") == "required", codec: compileCodec(f.Type, f.Tag, seen)}
			if d := f.Tag.Get("default"); d != "" {
				n := mustInt(t, "default", d)
				fc.def = &n
			}
			c.fields[name] = fc
			c.order = append(c.order, fc)
		}
	default:
		panic(fmt.Sprintf("controlapi: request type %v: %v values cannot be decoded", t, t.Kind()))
	}
	return c
}

// intLimits returns the range of an integer type with tag.
func intLimits(t reflect.Type, tag reflect.StructTag) (int64, int64) {
	bits := t.Bits()
	lo, hi := int64(-1)<<(bits-1), int64(uint64(1)<<(bits-1)-1)
	if m := tag.Get("min"); m != "" {
		lo = mustInt(t, "min", m)
	}
	if m := tag.Get("max"); m != "" {
		hi = mustInt(t, "max", m)
	}
	return lo, hi
}

// mustInt parses the integer of a tag.
func mustInt(t reflect.Type, key, value string) int64 {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("controlapi: request type %v: tag %s:%q is not an integer", t, key, value))
	}
	return n
}

// decodeBody decodes data, a request body, into v, a pointer to the
// codec's type: exactly one JSON value, strictly. An optional body may be
// absent (or white space): v is then left as it is.
func (c *codec) decodeBody(data []byte, optional bool, v any) error {
	rv := reflect.ValueOf(v).Elem()
	c.init(rv)
	if optional && len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	raw, err := parseValue(data)
	if err != nil {
		return err
	}
	return c.decode(raw, "", rv)
}

// decode decodes raw, the value at path, into v.
func (c *codec) decode(raw json.RawMessage, path string, v reflect.Value) error {
	var err error
	switch c.kind {
	case kindString:
		err = c.decodeString(raw, path, v)
	case kindInt:
		var n int64
		n, err = decodeInt(raw, path, c.min, c.max)
		v.SetInt(n)
	case kindBool:
		var b bool
		b, err = decodeBool(raw, path)
		v.SetBool(b)
	case kindPointer:
		p := reflect.New(c.typ.Elem())
		c.elem.init(p.Elem())
		v.Set(p)
		return c.elem.decode(raw, path, p.Elem())
	case kindArray:
		err = c.decodeArray(raw, path, v)
	case kindObject:
		err = c.decodeObject(raw, path, v)
	}
	if err != nil || !c.validate {
		return err
	}
	return v.Interface().(validator).Validate(path)
}

// decodeString decodes a string, one of the enum's if there is one.
func (c *codec) decodeString(raw json.RawMessage, path string, v reflect.Value) error {
	s, err := decodeString(raw, path)
	if err != nil {
		return err
	}
	if len(c.enum) > 0 && !slices.Contains(c.enum, s) {
		return fieldError(path, "%s must be %s", path, oneOf(c.enum))
	}
	v.SetString(s)
	return nil
}

// oneOf lists values for a message: "a", "b" or "c".
func oneOf(values []string) string {
	q := make([]string, len(values))
	for i, s := range values {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// decodeArray decodes an array, at most c.max elements.
func (c *codec) decodeArray(raw json.RawMessage, path string, v reflect.Value) error {
	out := reflect.MakeSlice(c.typ, 0, 0)
	err := decodeArray(raw, path, int(c.max), func(item json.RawMessage, p string) error {
		e := reflect.New(c.typ.Elem()).Elem()
		c.elem.init(e)
		if err := c.elem.decode(item, p, e); err != nil {
			return err
		}
		out = reflect.Append(out, e)
		return nil
	})
	v.Set(out)
	return err
}

// decodeObject decodes an object: every member must be a field, given
// once; the required ones must be there.
func (c *codec) decodeObject(raw json.RawMessage, path string, v reflect.Value) error {
	present := map[string]bool{}
	fields := make(map[string]fieldFunc, len(c.fields))
	for name, f := range c.fields {
		fields[name] = func(raw json.RawMessage, p string) error {
			present[name] = true
			return f.decode(raw, p, v.Field(f.index))
		}
	}
	if err := decodeObject(raw, path, fields); err != nil {
		return err
	}
	for _, f := range c.order {
		if f.required && !present[f.name] {
			name := join(path, f.name)
			return fieldError(name, "%s is required", name)
		}
	}
	return nil
}

// init sets the defaults of a value about to be decoded: integer fields'
// defaults, and empty (not nil) arrays.
func (c *codec) init(v reflect.Value) {
	if c.kind != kindObject {
		return
	}
	for _, f := range c.order {
		fv := v.Field(f.index)
		switch {
		case f.def != nil:
			fv.SetInt(*f.def)
		case f.kind == kindArray:
			fv.Set(reflect.MakeSlice(f.typ, 0, 0))
		case f.kind == kindObject:
			f.init(fv)
		}
	}
}
