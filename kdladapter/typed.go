package kdladapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// A typed block is a KDL block declared once, with its mapper: the block's
// Key lists its settings (what the walker, checkBlock, accepts and what
// docs/compatibility.md shows) and its Map reads them into the target
// module's own struct (T), whose JSON struct tags name the keys of the
// output. A setting is declared by a field[T]: its Key and the function
// that reads the node into T.
//
//	typedBlock[adaptive.Maglev](h("maglev", "…"),
//		stringField("key", "…", func(m *adaptive.Maglev) *string { return &m.Key }),
//	)
//
// mapBlock checks a node against such a Key and maps it; typedObj turns
// the result into the adapter's ordered output form (moduleJSON, in
// typedjson.go, writes it directly).

// field declares one setting of a typed block: its schema entry and how
// its node is read into T. A warned or not-yet setting has only its key.
type field[T any] struct {
	key  *Key
	read func(a *adapter, n *kdl.Node, t *T)
	// ptr returns the pointer to the field of t the setting is read into:
	// typedBlock finds the field's JSON key from it.
	ptr func(t *T) any
}

// typedBlock sets k's Children to the fields' keys and its Map to a
// mapper that reads them into a new T. Only Honoured settings are read
// (the walker reports the others); a repeated setting is read once, the
// first time, as the walker's warning says.
//
// Each setting's Note starts with the JSON key of its field (from T's
// struct tags), so that docs/compatibility.md shows the module's key
// without the adapter repeating it.
func typedBlock[T any](k *Key, fields ...field[T]) *Key {
	return typedBlockInit(k, nil, fields...)
}

// typedBlockInit is typedBlock with the defaults of T set by init (when
// not nil) before the settings are read.
func typedBlockInit[T any](k *Key, init func(*T), fields ...field[T]) *Key {
	k, read := typedBlockInto(k, fields...)
	k.Map = func(a *adapter, n *kdl.Node) any {
		t := new(T)
		if init != nil {
			init(t)
		}
		read(a, n, t)
		return t
	}
	return k
}

// typedBlockInto is typedBlock returning also the function that reads a
// block into a T given by the caller (one that carries context, such as
// the route's id for messages).
func typedBlockInto[T any](k *Key, fields ...field[T]) (*Key, func(a *adapter, n *kdl.Node, t *T)) {
	read := make(map[string]func(*adapter, *kdl.Node, *T), len(fields))
	for _, f := range fields {
		k.Children = append(k.Children, f.key)
		if f.ptr == nil {
			// A warned or not-yet setting (the walker reports it), a
			// nested block or lifted setting (typedtree.go), whose note
			// is set already, or one that is not a field of T's JSON
			// (plainField).
			if f.read != nil && f.key.Status == Honoured {
				read[f.key.Name] = f.read
			}
			continue
		}
		if key := jsonKeyOf(f.ptr); f.key.Note == "" {
			f.key.Note = "`" + key + "`"
		} else {
			f.key.Note = "`" + key + "`: " + f.key.Note
		}
		if f.key.Status == Honoured {
			read[f.key.Name] = f.read
		}
	}
	k.Map = func(a *adapter, n *kdl.Node) any {
		t := new(T)
		readAll(a, n, t, read)
		return t
	}
	return k, func(a *adapter, n *kdl.Node, t *T) { readAll(a, n, t, read) }
}

// readAll reads the settings of n into t; a repeated setting is read
// once, the first time, as the walker's warning says, unless it is
// repeatable.
func readAll[T any](a *adapter, n *kdl.Node, t *T, read map[string]func(*adapter, *kdl.Node, *T)) {
	// The settings read, for repeated ones (the first wins): a list on
	// the stack for blocks of up to 16 settings (a route's, an
	// upstream's: no map for each of 100,000 blocks), a map for larger
	// ones.
	var (
		small [16]string
		seen  map[string]bool
	)
	list := small[:0]
	for _, c := range n.Children {
		r := read[c.Name]
		if r == nil {
			continue
		}
		if !repeatable[c.Name] {
			if seen == nil && len(n.Children) > len(small) {
				seen = make(map[string]bool, len(n.Children))
			}
			if seen != nil {
				if seen[c.Name] {
					continue
				}
				seen[c.Name] = true
			} else {
				if slices.Contains(list, c.Name) {
					continue
				}
				list = append(list, c.Name)
			}
		}
		r(a, c, t)
	}
}

// mapBlock checks n against the block k (unknown settings, statuses) and
// maps it with k.Map, which must be set; where is the dotted path of n in
// messages. It is for blocks the walker does not reach from Schema()
// (their keys depend on a value, as load-balancing's on the algorithm).
func (a *adapter) mapBlock(n *kdl.Node, k *Key, where string) any {
	a.checkBlock(n, k, where)
	return k.Map(a, n)
}

// jsonKeyOf is the JSON key (struct tag) of the field of T that ptr
// points into (a field of T, or of a struct embedded in T, as
// caddy.CustomLog's of caddy.BaseLog); it panics when ptr does not point
// to such a field with a JSON name, a mistake in a declaration.
func jsonKeyOf[T any](ptr func(*T) any) string {
	t := new(T)
	p := reflect.ValueOf(ptr(t))
	v := reflect.ValueOf(t).Elem()
	// The fields of T and those promoted from its embedded structs (the
	// module struct a block's T embeds, caddy.CustomLog's caddy.BaseLog).
	for _, f := range reflect.VisibleFields(v.Type()) {
		if !f.IsExported() || f.Anonymous || f.Type != p.Type().Elem() || !fieldAddressable(v, f.Index) ||
			v.FieldByIndex(f.Index).Addr().Pointer() != p.Pointer() {
			continue
		}
		if key, _, _ := strings.Cut(f.Tag.Get("json"), ","); key != "" && key != "-" {
			return key
		}
	}
	panic(fmt.Sprintf("kdladapter: no JSON field of %T at the pointer", t))
}

// fieldAddressable reports whether the field at index is reached without
// a nil embedded pointer.
func fieldAddressable(v reflect.Value, index []int) bool {
	_, ok := fieldOfValue(v, index)
	return ok
}

// extension marks the setting as an extension of Sentinel on Caddy.
func (f field[T]) extension() field[T] {
	f.key.Extension = true
	return f
}

// fieldOf is a setting read by read (which reports bad values) into a
// field of type F.
func fieldOf[T, F any](name, note string, read func(a *adapter, n *kdl.Node) (F, bool), p func(*T) *F) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if v, ok := read(a, n); ok {
			*p(t) = v
		}
	}}
}

// durationField is a duration setting ("30s", or a number of seconds).
func durationField[T any](name, note string, p func(*T) *caddy.Duration) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if s, ok := a.duration(n); ok {
			d, _ := time.ParseDuration(s) // a.duration wrote it
			*p(t) = caddy.Duration(d)
		}
	}}
}

// floatField is a number setting.
func floatField[T any](name, note string, p func(*T) *float64) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if f, ok := a.number(n); ok {
			*p(t) = f
		}
	}}
}

// intField is an integer setting between lo and hi.
func intField[T any](name, note string, lo, hi int64, p func(*T) *int) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if i, ok := a.integer(n, lo, hi); ok {
			*p(t) = int(i)
		}
	}}
}

// boolField is a boolean setting.
func boolField[T any](name, note string, p func(*T) *bool) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if b, ok := a.boolean(n); ok {
			*p(t) = b
		}
	}}
}

// optBoolField is a boolean setting whose absence differs from #false.
func optBoolField[T any](name, note string, p func(*T) **bool) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if b, ok := a.boolean(n); ok {
			*p(t) = &b
		}
	}}
}

// stringField is a string setting.
func stringField[T any](name, note string, p func(*T) *string) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if s, ok := a.str(n); ok {
			*p(t) = s
		}
	}}
}

// stringsField is a setting of one or more strings.
func stringsField[T any](name, note string, p func(*T) *[]string) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		*p(t) = a.strs(n)
	}}
}

// guestField is a setting naming a guest module (a selection policy
// delegated to, …) of the block owner: choices maps each accepted name
// to the module's JSON (nil when not accepted); anything else is an error
// listing want.
func guestField[T any](name, note, owner, want string, choices func(string) json.RawMessage, p func(*T) *json.RawMessage) field[T] {
	return field[T]{key: h(name, note), ptr: func(t *T) any { return p(t) }, read: func(a *adapter, n *kdl.Node, t *T) {
		if s, ok := a.str(n); ok {
			if raw := choices(s); raw != nil {
				*p(t) = raw
			} else {
				a.d.errorf(n.Args[0].Pos, "%s %q of %s: expected %s", n.Name, s, owner, want)
			}
		}
	}}
}

// durationType is the type of Caddy's duration fields.
var durationType = reflect.TypeFor[caddy.Duration]()

// typedObj is the adapter's output form (obj, encoded with sorted keys)
// of v, a module's typed value (a struct or a pointer to one), with the
// module's inline key (e.g. "policy") set to name unless inlineKey is ""
// (a value that is not a module): the keys are v's JSON
// struct tags, the values encoding/json's bytes, except the durations
// (caddy.Duration fields), written "500ms" like every duration of the
// adapter's output rather than as nanoseconds (Caddy reads both).
func typedObj(v any, inlineKey, name string) obj {
	// What caddyconfig.JSONModuleObject does, with one encoding instead
	// of three: the struct's bytes, split into its fields.
	raw, err := json.Marshal(v)
	if err != nil {
		panic("kdladapter: " + err.Error()) // the module types encode
	}
	out := splitObject(raw)
	rv := reflect.Indirect(reflect.ValueOf(v))
	rt := rv.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if f.Type != durationType || !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if _, set := out[key]; set && key != "" && key != "-" {
			out[key] = dur(time.Duration(rv.Field(i).Int()))
		}
	}
	if inlineKey != "" {
		out[inlineKey] = name
	}
	return out
}

// splitObject splits a JSON object written by encoding/json (compact,
// valid) into its members, without decoding the values: a scanner of
// strings and nesting, much cheaper than json.Unmarshal. The values are
// json.RawMessage.
func splitObject(raw []byte) obj {
	out := make(obj, 8)
	depth, inString, keyStart, valStart := 0, false, 1, 0
	var key string
	for i := 1; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case depth > 0 && (c == '}' || c == ']'):
			depth--
		case depth == 0 && c == ':' && valStart == 0:
			if q := raw[keyStart:i]; bytes.IndexByte(q, '\\') < 0 {
				key = string(q[1 : len(q)-1])
			} else if err := json.Unmarshal(q, &key); err != nil {
				panic("kdladapter: " + err.Error()) // encoding/json wrote it
			}
			valStart = i + 1
		case depth == 0 && (c == ',' || c == '}'):
			if valStart > 0 {
				out[key] = json.RawMessage(raw[valStart:i])
			}
			keyStart, valStart = i+1, 0
		}
	}
	return out
}

// guestModule is the JSON of a guest module without settings:
// {"<inlineKey>":"<name>"}.
func guestModule(inlineKey, name string) json.RawMessage {
	return caddyconfig.JSONModuleObject(struct{}{}, inlineKey, name, nil)
}
