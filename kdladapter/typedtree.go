package kdladapter

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// This file holds the parts of the typed-block mechanism (typed.go) for
// modules whose settings are nested structs (an http transport's
// keep_alive and tls, a server's TLS connection policies) and for blocks
// whose settings are read into the struct of the enclosing block.

// typedTree is the adapter's output form of v, a module's typed value (a
// struct or a pointer to one), at every depth: the keys are v's JSON
// struct tags (omitempty and embedded structs as encoding/json has them),
// nested structs (also in slices and string-keyed maps) are obj maps, so
// that the encoder sorts their keys as it sorts every obj, and durations
// (caddy.Duration) are written "500ms" like every duration of the
// adapter's output. Values of other types are encoding/json's bytes.
//
// It is typedObj for values with nested structs; it costs a walk of the
// struct's fields with reflection, so the mappers call it once per block
// (an upstream's transport), not once per route.
func typedTree(v any) obj {
	return (*treeTypes)(nil).tree(v)
}

// typedTree is typedTree with the adapter's cache of struct types: a
// config of 100,000 upstreams maps 100,000 transports of the same type.
func (a *adapter) typedTree(v any) obj {
	if a.treeTypes == nil {
		a.treeTypes = &treeTypes{}
	}
	return a.treeTypes.tree(v)
}

// treeTypes caches what typedTree reads of the types it meets (a nil
// *treeTypes caches nothing).
type treeTypes struct {
	fields    map[reflect.Type][]treeField
	marshaler map[reflect.Type]bool
}

// treeField is a field of a struct type as addFields writes it.
type treeField struct {
	index int
	// name is the JSON key; empty for an embedded struct (or pointer
	// to one), whose fields are promoted.
	name                string
	omitEmpty, omitZero bool
}

// tree is typedTree.
func (c *treeTypes) tree(v any) obj {
	rv := reflect.Indirect(reflect.ValueOf(v))
	out := make(obj, 8)
	c.addFields(out, rv)
	return out
}

// fieldsOf lists the fields of the struct type t that addFields writes,
// with their JSON keys and options (encoding/json's rules).
func (c *treeTypes) fieldsOf(t reflect.Type) []treeField {
	if c != nil {
		if fs, ok := c.fields[t]; ok {
			return fs
		}
	}
	var fs []treeField
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				fs = append(fs, treeField{index: i})
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs = append(fs, treeField{index: i, name: name, omitEmpty: hasOpt(opts, "omitempty"), omitZero: hasOpt(opts, "omitzero")})
	}
	if c != nil {
		if c.fields == nil {
			c.fields = make(map[reflect.Type][]treeField)
		}
		c.fields[t] = fs
	}
	return fs
}

// isMarshaler reports whether t or *t implements json.Marshaler.
func (c *treeTypes) isMarshaler(t reflect.Type) bool {
	if c != nil {
		if m, ok := c.marshaler[t]; ok {
			return m
		}
	}
	m := t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType)
	if c != nil {
		if c.marshaler == nil {
			c.marshaler = make(map[reflect.Type]bool)
		}
		c.marshaler[t] = m
	}
	return m
}

// addFields adds the fields of the struct v to out.
func (c *treeTypes) addFields(out obj, v reflect.Value) {
	var promoted obj // fields of embedded structs: outer fields win
	for _, f := range c.fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if f.name == "" {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if promoted == nil {
				promoted = obj{}
			}
			c.addFields(promoted, fv)
			continue
		}
		if (f.omitEmpty && isEmptyValue(fv)) || (f.omitZero && fv.IsZero()) {
			continue
		}
		out[f.name] = c.treeValue(fv)
	}
	for k, x := range promoted {
		if _, set := out[k]; !set {
			out[k] = x
		}
	}
}

func hasOpt(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	marshalerType  = reflect.TypeFor[json.Marshaler]()
)

// treeValue is the output form of one value (see typedTree).
func (c *treeTypes) treeValue(v reflect.Value) any {
	t := v.Type()
	switch {
	case t == durationType:
		return dur(time.Duration(v.Int()))
	case t == rawMessageType:
		if v.IsNil() {
			return nil
		}
		return json.RawMessage(v.Bytes())
	case c.isMarshaler(t):
		return marshalRaw(v)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return c.treeValue(v.Elem())
	case reflect.Struct:
		out := make(obj, 8)
		c.addFields(out, v)
		return out
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Float64:
		return v.Float()
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if t.Elem().Kind() == reflect.String && t.Elem() == reflect.TypeFor[string]() {
			return append([]string(nil), v.Interface().([]string)...)
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return marshalRaw(v)
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = c.treeValue(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		if t.Key().Kind() != reflect.String {
			return marshalRaw(v)
		}
		out := make(obj, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = c.treeValue(it.Value())
		}
		return out
	}
	return marshalRaw(v)
}

// marshalRaw is encoding/json's encoding of v.
func marshalRaw(v reflect.Value) json.RawMessage {
	raw, err := json.Marshal(v.Interface())
	if err != nil {
		panic("kdladapter: " + err.Error()) // the module types encode
	}
	return raw
}

// fieldNote sets the Note of f's key from the JSON key of its field,
// prefixed by prefix (the path of the struct holding the field), as
// typedBlock does for its fields.
func fieldNote[T any](prefix string, f field[T]) {
	if f.ptr == nil {
		return
	}
	key := "`" + prefix + jsonKeyOf(f.ptr) + "`"
	if f.key.Note != "" {
		key += ": " + f.key.Note
	}
	f.key.Note = key
}

// nested is a setting of T that is a block of settings read into the
// same T (an upstream's `timeouts { connect-secs 5 }` into its http
// transport). The fields' notes are set here; the block's own note is
// note.
func nested[T any](name, note string, fields ...field[T]) field[T] {
	k := h(name, note)
	read := make(map[string]func(*adapter, *kdl.Node, *T), len(fields))
	var spellings map[string]string
	for _, f := range fields {
		k.Children = append(k.Children, f.key)
		fieldNote("", f)
		if f.key.Status == Honoured && f.read != nil {
			read[f.key.Name] = f.read
		}
		if of, ok := strings.CutPrefix(f.key.Note, legacyNote); ok {
			if spellings == nil {
				spellings = map[string]string{}
			}
			spellings[f.key.Name] = of
		}
	}
	return field[T]{key: k, read: func(a *adapter, n *kdl.Node, t *T) {
		readFields(a, n, t, read, spellings)
	}}
}

// block is a typed block (as typedBlock declares) whose legacy spellings
// give way to the current ones (see legacy).
func block[T any](name, note string, fields ...field[T]) *Key {
	f := nested(name, note, fields...)
	f.key.Map = func(a *adapter, n *kdl.Node) any {
		t := new(T)
		f.read(a, n, t)
		return t
	}
	return f.key
}

// readFields reads the children of n into t; a repeated setting is read
// once, the first time, as the walker's warning says, and a legacy
// spelling (a key of legacyOf) is not read when the current one is given.
func readFields[T any](a *adapter, n *kdl.Node, t *T, read map[string]func(*adapter, *kdl.Node, *T), legacyOf map[string]string) {
	// The names read so far: a block has a few settings, a linear
	// search of a small slice costs less than a map.
	var small [8]string
	seen := small[:0]
	for _, c := range n.Children {
		r := read[c.Name]
		if r == nil || (slices.Contains(seen, c.Name) && !repeatable[c.Name]) {
			continue
		}
		if of, ok := legacyOf[c.Name]; ok && setting(n, of) != nil {
			continue
		}
		seen = append(seen, c.Name)
		r(a, c, t)
	}
}

// inPtr lifts f, a setting of S, into T, whose field p points to the S
// (created when the setting is read): `max-idle` of an upstream's
// connection-pool is the transport's keep_alive.max_idle_conns_per_host.
// The note shows the JSON path.
func inPtr[T, S any](p func(*T) **S, f field[S]) field[T] {
	fieldNote(jsonKeyOf(func(t *T) any { return p(t) })+".", f)
	return field[T]{key: f.key, read: func(a *adapter, n *kdl.Node, t *T) {
		s := p(t)
		if *s == nil {
			*s = new(S)
		}
		f.read(a, n, *s)
	}}
}

// custom is a setting read by read, which reports bad values itself, into
// the field p points to (for its JSON key); note is the rest of the note.
func custom[T, F any](name, note string, p func(*T) *F, read func(a *adapter, n *kdl.Node, t *T)) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: read}
}

// legacy is another spelling of a setting (`idle-timeout` for
// `idle-timeout-secs`): the same reader, a note naming the setting. In a
// nested block or a block (not a typedBlock), the current spelling wins
// when both are given.
func legacy[T any](name, of string, f field[T]) field[T] {
	return field[T]{key: h(name, legacyNote+of), read: f.read}
}

// legacyNote starts the note of a legacy spelling.
const legacyNote = "legacy spelling of "

// blockField is a setting of T that is the typed block k (declared with
// typedBlock[S]), read into the field p points to.
func blockField[T, S any](k *Key, p func(*T) **S) field[T] {
	return field[T]{key: k, ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		*p(t) = k.Map(a, n).(*S)
	}}
}

// readBy is a setting of the field p points to that the block's caller
// reads, because it is mapped together with other settings (an upstream's
// http-version with its tls); the note says how.
func readBy[T, F any](name, note string, p func(*T) *F) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }}
}

// withChildren declares the settings of a block setting whose reader
// reads them itself (a custom field).
func (f field[T]) withChildren(keys ...*Key) field[T] {
	f.key.Children = keys
	return f
}
