package kdladapter

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// fragments stores encoded JSON (the routes' and upstreams') in large
// chunks: a config of 100,000 routes keeps a hundred chunks alive instead
// of 100,000 buffers, and no map of the routes survives their mapping.
type fragments struct {
	chunk []byte
	// scratch is reused to encode one fragment.
	scratch []byte
}

// fragmentChunk is the size of a chunk of fragments.
const fragmentChunk = 1 << 20

// add copies b into the current chunk (a new one when it is full) and
// returns the copy.
func (f *fragments) add(b []byte) []byte {
	if cap(f.chunk)-len(f.chunk) < len(b) {
		f.chunk = make([]byte, 0, max(fragmentChunk, len(b)))
	}
	start := len(f.chunk)
	f.chunk = append(f.chunk, b...)
	return f.chunk[start:len(f.chunk):len(f.chunk)]
}

// encode encodes v as a fragment.
func (f *fragments) encode(v any) json.RawMessage {
	f.scratch = encode(f.scratch[:0], v)
	return f.add(f.scratch)
}

// encodeItems encodes the elements of list, comma-separated, without the
// brackets.
func (f *fragments) encodeItems(list []obj) []byte {
	b := f.scratch[:0]
	for i, o := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = encode(b, o)
	}
	f.scratch = b
	return f.add(b)
}

// encode writes v as JSON with object keys sorted, like encoding/json but
// without reflection: the adapter's output is built only from the types
// below, and encoding a large config is most of the adapter's time.
func encode(buf []byte, v any) []byte {
	return (*encoder)(nil).value(buf, v)
}

// encodeSized encodes v into a buffer of exactly its size. The routes and
// upstreams of a large config are most of the output and are already
// encoded (routeJSON, json.RawMessage): a first pass encodes the rest and
// adds up their lengths, so that the output is allocated once, instead of
// growing (and being copied) a dozen times.
func encodeSized(v any) []byte {
	m := &encoder{measure: true}
	skeleton := m.value(nil, v)
	return encode(make([]byte, 0, len(skeleton)+m.raw), v)
}

// encoder is the state of an encoding; a nil *encoder writes everything.
type encoder struct {
	// measure, when set, makes the encoder skip the pre-encoded parts
	// and count their bytes in raw.
	measure bool
	raw     int
}

// appendRaw appends pre-encoded JSON (or counts it).
func (e *encoder) appendRaw(buf []byte, parts ...[]byte) []byte {
	for _, p := range parts {
		if e != nil && e.measure {
			e.raw += len(p)
			continue
		}
		buf = append(buf, p...)
	}
	return buf
}

func (e *encoder) value(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case obj:
		var small [16]string
		keys := small[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = e.value(buf, x[k])
		}
		return append(buf, '}')
	case map[string][]string:
		o := make(obj, len(x))
		for k, s := range x {
			o[k] = s
		}
		return e.value(buf, o)
	case map[string]string:
		o := make(obj, len(x))
		for k, s := range x {
			o[k] = s
		}
		return e.value(buf, o)
	case []obj:
		buf = append(buf, '[')
		for i, o := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.value(buf, o)
		}
		return append(buf, ']')
	case []any:
		buf = append(buf, '[')
		for i, o := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.value(buf, o)
		}
		return append(buf, ']')
	case routeJSON:
		return x.appendTo(e, buf)
	case []string:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return appendString(b, x[i]) })
	case []int64:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return strconv.AppendInt(b, x[i], 10) })
	case []int:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return strconv.AppendInt(b, int64(x[i]), 10) })
	case []json.RawMessage:
		buf = append(buf, '[')
		for i, r := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.appendRaw(buf, r)
		}
		return append(buf, ']')
	case json.RawMessage:
		return e.appendRaw(buf, x)
	case string:
		return appendString(buf, x)
	case bool:
		return strconv.AppendBool(buf, x)
	case int:
		return strconv.AppendInt(buf, int64(x), 10)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return append(buf, "null"...)
		}
		return strconv.AppendFloat(buf, x, 'g', -1, 64)
	}
	panic(fmt.Sprintf("kdladapter: cannot encode %T", v))
}

func encodeList(buf []byte, n int, elem func([]byte, int) []byte) []byte {
	buf = append(buf, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = elem(buf, i)
	}
	return append(buf, ']')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string, escaping like encoding/json
// (including <, > and & so that output is byte-identical to it).
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
