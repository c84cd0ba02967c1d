package kdladapter

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// moduleJSON writes values of a module's own Go type T (agents.Filter,
// wasm.Plugin, Caddy's fileserver.FileServer, …) as the adapter writes
// its output: object keys sorted at every level (as encode sorts obj),
// durations (caddy.Duration) as "500ms" strings, and the module's inline
// key ("handler": "file_server") among the keys, as
// caddyconfig.JSONModuleObject adds it. The keys are T's JSON struct
// tags: the module declares them, the adapter does not repeat them.
//
// The plan of T (its fields, sorted by key, and how each is written) is
// computed once, when moduleJSON is declared; writing a value walks the
// plan, without encoding/json and without looking at struct tags.
type moduleJSON[T any] struct{ s *shape }

// newModuleJSON plans T; with inlineKey "" the value is not a module
// (no inline key is added).
func newModuleJSON[T any](inlineKey, name string) moduleJSON[T] {
	s := planType(reflect.TypeFor[T](), map[reflect.Type]*shape{})
	if s.kind != kStruct {
		panic(fmt.Sprintf("kdladapter: %T is not a struct", *new(T)))
	}
	if inlineKey != "" {
		c := *s
		c.fields = append(slices.Clone(s.fields), shapeField{key: inlineKey, constant: appendString(nil, name)})
		slices.SortFunc(c.fields, func(a, b shapeField) int { return strings.Compare(a.key, b.key) })
		s = &c
	}
	return moduleJSON[T]{s: s}
}

// append writes v.
func (m moduleJSON[T]) append(buf []byte, v *T) []byte {
	return m.s.append(buf, reflect.ValueOf(v).Elem())
}

// obj is v as an obj whose members are written as append writes them
// (json.RawMessage, in one buffer): for a value the adapter adds members
// to afterwards (a route's load_balancing, which gets its upstream's
// selection policy), without typedTree's walk and maps.
func (m moduleJSON[T]) obj(v *T) obj {
	rv := reflect.ValueOf(v).Elem()
	type member struct {
		key        string
		start, end int
	}
	var (
		small   [8]member
		members = small[:0]
		buf     []byte
	)
	for i := range m.s.fields {
		f := &m.s.fields[i]
		start := len(buf)
		var ok bool
		if buf, ok = f.appendValue(buf, rv); !ok {
			continue
		}
		members = append(members, member{f.key, start, len(buf)})
	}
	out := make(obj, len(members)+1)
	for _, mb := range members {
		out[mb.key] = json.RawMessage(buf[mb.start:mb.end:mb.end])
	}
	return out
}

// raw is v's JSON, for an obj or a list of handlers.
func (m moduleJSON[T]) raw(v *T) json.RawMessage {
	return m.append(make([]byte, 0, 128), v)
}

type shapeKind uint8

const (
	kString shapeKind = iota
	kBool
	kInt
	kUint
	kFloat
	kDuration
	kRaw       // json.RawMessage
	kMarshaler // json.Marshaler (caddyhttp.WeakString, …)
	kAny       // an interface: the adapter's encoder
	kPtr
	kStruct
	kSlice
	kMap
)

// shape is the plan of a type.
type shape struct {
	kind   shapeKind
	elem   *shape       // kPtr, kSlice, kMap
	fields []shapeField // kStruct, sorted by key
}

// shapeField is a member of a struct's JSON object.
type shapeField struct {
	key       string
	index     []int // the field, through embedded structs
	omitEmpty bool
	s         *shape
	// constant, when set, is the member's encoded value (the inline key).
	constant []byte
}

var (
	rawRT       = reflect.TypeFor[json.RawMessage]()
	marshalerRT = reflect.TypeFor[json.Marshaler]()
)

// planType plans t; seen holds the types being planned (recursive types).
func planType(t reflect.Type, seen map[reflect.Type]*shape) *shape {
	if s := seen[t]; s != nil {
		return s
	}
	s := &shape{}
	seen[t] = s
	switch {
	case t == durationType:
		s.kind = kDuration
	case t == rawRT:
		s.kind = kRaw
	case t.Implements(marshalerRT) && t.Kind() != reflect.Pointer:
		s.kind = kMarshaler
	default:
		switch t.Kind() {
		case reflect.String:
			s.kind = kString
		case reflect.Bool:
			s.kind = kBool
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			s.kind = kInt
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			s.kind = kUint
		case reflect.Float32, reflect.Float64:
			s.kind = kFloat
		case reflect.Interface:
			s.kind = kAny
		case reflect.Pointer:
			s.kind, s.elem = kPtr, planType(t.Elem(), seen)
		case reflect.Slice:
			s.kind, s.elem = kSlice, planType(t.Elem(), seen)
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				panic("kdladapter: map key of " + t.String() + " is not a string")
			}
			s.kind, s.elem = kMap, planType(t.Elem(), seen)
		case reflect.Struct:
			s.kind = kStruct
			for _, f := range reflect.VisibleFields(t) {
				tag, hasTag := f.Tag.Lookup("json")
				name, opts, _ := strings.Cut(tag, ",")
				if !f.IsExported() || name == "-" || (f.Anonymous && !hasTag) {
					continue
				}
				if name == "" {
					name = f.Name
				}
				s.fields = append(s.fields, shapeField{key: name, index: f.Index,
					omitEmpty: strings.Contains(","+opts+",", ",omitempty,"), s: planType(f.Type, seen)})
			}
			slices.SortFunc(s.fields, func(a, b shapeField) int { return strings.Compare(a.key, b.key) })
		default:
			panic("kdladapter: cannot plan " + t.String())
		}
	}
	return s
}

// fieldOfValue is the field at index in v, false when an embedded
// pointer on the way is nil (the field is absent).
func fieldOfValue(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// empty reports whether omitempty leaves v out (encoding/json's rule).
func (s *shape) empty(v reflect.Value) bool {
	switch s.kind {
	case kStruct:
		return false
	case kRaw, kSlice, kMap:
		return v.Len() == 0
	case kPtr, kAny:
		return v.IsNil()
	}
	return v.IsZero()
}

func (s *shape) append(buf []byte, v reflect.Value) []byte {
	switch s.kind {
	case kString:
		return appendString(buf, v.String())
	case kBool:
		return strconv.AppendBool(buf, v.Bool())
	case kInt:
		return strconv.AppendInt(buf, v.Int(), 10)
	case kUint:
		return strconv.AppendUint(buf, v.Uint(), 10)
	case kFloat:
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return append(buf, "null"...)
		}
		return strconv.AppendFloat(buf, f, 'g', -1, 64)
	case kDuration:
		return appendString(buf, dur(time.Duration(v.Int())))
	case kRaw:
		if v.Len() == 0 {
			return append(buf, "null"...)
		}
		return append(buf, v.Bytes()...)
	case kMarshaler:
		b, err := v.Interface().(json.Marshaler).MarshalJSON()
		if err != nil {
			panic("kdladapter: " + err.Error()) // the module types encode
		}
		return append(buf, b...)
	case kAny:
		if v.IsNil() {
			return append(buf, "null"...)
		}
		return encode(buf, v.Elem().Interface())
	case kPtr:
		if v.IsNil() {
			return append(buf, "null"...)
		}
		return s.elem.append(buf, v.Elem())
	case kSlice:
		if v.IsNil() {
			return append(buf, "null"...)
		}
		buf = append(buf, '[')
		for i := range v.Len() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = s.elem.append(buf, v.Index(i))
		}
		return append(buf, ']')
	case kMap:
		if v.IsNil() {
			return append(buf, "null"...)
		}
		keys := make([]string, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			keys = append(keys, it.Key().String())
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = s.elem.append(buf, v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
		}
		return append(buf, '}')
	}
	// kStruct
	buf = append(buf, '{')
	first := true
	for i := range s.fields {
		f := &s.fields[i]
		var fv reflect.Value
		if f.constant == nil {
			var ok bool
			if fv, ok = fieldOfValue(v, f.index); !ok || (f.omitEmpty && f.s.empty(fv)) {
				continue
			}
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendString(buf, f.key)
		buf = append(buf, ':')
		if f.constant != nil {
			buf = append(buf, f.constant...)
		} else {
			buf = f.s.append(buf, fv)
		}
	}
	return append(buf, '}')
}

// appendValue writes the field's value in the struct rv (its constant,
// or the value), with ok false when the field is left out (a nil pointer
// on the way to it, or empty and omitempty) and buf unchanged.
func (f *shapeField) appendValue(buf []byte, rv reflect.Value) (_ []byte, ok bool) {
	if f.constant != nil {
		return append(buf, f.constant...), true
	}
	fv, ok := fieldOfValue(rv, f.index)
	if !ok || (f.omitEmpty && f.s.empty(fv)) {
		return buf, false
	}
	return f.s.append(buf, fv), true
}

// members writes v's members as obj writes them (json.RawMessage, in one
// buffer) into o, for a value the adapter adds members to afterwards,
// without a map.
func (m moduleJSON[T]) members(v *T, o *jsonMembers) {
	rv := reflect.ValueOf(v).Elem()
	// One allocation for a route's load_balancing (its retries and
	// retry_match) instead of the buffer growing from nothing.
	buf := make([]byte, 0, membersBufSize)
	type span struct{ start, end int }
	var (
		small [8]span
		spans = small[:0]
		keys  [8]string
		more  []string
	)
	for i := range m.s.fields {
		f := &m.s.fields[i]
		start := len(buf)
		var ok bool
		if buf, ok = f.appendValue(buf, rv); !ok {
			continue
		}
		if len(spans) < len(keys) {
			keys[len(spans)] = f.key
		} else {
			more = append(more, f.key)
		}
		spans = append(spans, span{start, len(buf)})
	}
	for i, sp := range spans {
		key := ""
		if i < len(keys) {
			key = keys[i]
		} else {
			key = more[i-len(keys)]
		}
		o.setRaw(key, buf[sp.start:sp.end:sp.end])
	}
}

// membersBufSize is the first capacity of the buffer moduleJSON.members
// writes the members into.
const membersBufSize = 64

// jsonMembers is a JSON object of a few members, built without a map
// (one for each of 100,000 routes' reverse proxies and their
// load_balancing): appendTo writes it as encode writes the obj of the
// same members, the keys sorted (TestJSONMembersSameAsObj). Its first
// members are in an array of its own, not a slice of it (which would
// move every jsonMembers to the heap).
type jsonMembers struct {
	n     int
	small [8]jsonMember
	more  []jsonMember
}

type jsonMember struct {
	key   string
	value any
	// raw, with isRaw, is a pre-encoded value (setRaw), held without
	// boxing it in value (an allocation per member).
	raw   []byte
	isRaw bool
}

// at is the i-th member.
func (o *jsonMembers) at(i int) *jsonMember {
	if i < len(o.small) {
		return &o.small[i]
	}
	return &o.more[i-len(o.small)]
}

// set sets the member key to v, replacing it when it is there.
func (o *jsonMembers) set(key string, v any) {
	o.put(jsonMember{key: key, value: v})
}

// setRaw sets the member key to the pre-encoded raw, as set(key,
// json.RawMessage(raw)) does, without boxing raw in an interface.
func (o *jsonMembers) setRaw(key string, raw []byte) {
	o.put(jsonMember{key: key, raw: raw, isRaw: true})
}

// put sets m, replacing the member of its key when it is there.
func (o *jsonMembers) put(m jsonMember) {
	for i := range o.n {
		if x := o.at(i); x.key == m.key {
			*x = m
			return
		}
	}
	if o.n < len(o.small) {
		o.small[o.n] = m
	} else {
		o.more = append(o.more, m)
	}
	o.n++
}

// val is the member's value (a json.RawMessage for a raw one).
func (m *jsonMember) val() any {
	if m.isRaw {
		return json.RawMessage(m.raw)
	}
	return m.value
}

// get is the member key's value, false without it.
func (o *jsonMembers) get(key string) (any, bool) {
	for i := range o.n {
		if m := o.at(i); m.key == key {
			return m.val(), true
		}
	}
	return nil, false
}

// has reports whether the member key is there.
func (o *jsonMembers) has(key string) bool {
	for i := range o.n {
		if o.at(i).key == key {
			return true
		}
	}
	return false
}

// len is the number of members.
func (o *jsonMembers) len() int { return o.n }

// obj is the members as an obj.
func (o *jsonMembers) obj() obj {
	out := make(obj, o.n)
	for i := range o.n {
		m := o.at(i)
		out[m.key] = m.val()
	}
	return out
}

// appendTo writes the members, sorted by key, their values as encode
// writes them.
func (o *jsonMembers) appendTo(buf []byte) []byte {
	// Sorted by insertion: a few members.
	for i := 1; i < o.n; i++ {
		for j := i; j > 0 && o.at(j).key < o.at(j-1).key; j-- {
			x, y := o.at(j), o.at(j-1)
			*x, *y = *y, *x
		}
	}
	buf = append(buf, '{')
	for i := range o.n {
		m := o.at(i)
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, m.key)
		buf = append(buf, ':')
		if m.isRaw {
			// What encode writes of a json.RawMessage.
			buf = append(buf, m.raw...)
		} else {
			buf = encode(buf, m.value)
		}
	}
	return append(buf, '}')
}
