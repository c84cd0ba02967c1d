package kdladapter

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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

// flatJSON is a configuration encoded except for its pre-encoded parts
// (the routes' and upstreams' fragments, json.RawMessage): the skeleton
// and, in order, where each part goes in it. The routes and upstreams of
// a large config are most of the output and are encoded already: the
// output is allocated once, at its size, instead of growing (and being
// copied) a dozen times, or written to an io.Writer without being built
// at all (AdaptTo). Nothing of the configuration's tree (nor of the KDL
// text its strings share memory with) is referred to by a flatJSON: the
// collector can free them before the output is allocated.
type flatJSON struct {
	skeleton []byte
	parts    []rawPart
	size     int
}

// rawPart is a pre-encoded part of a flatJSON, to be written at offset at
// of the skeleton.
type rawPart struct {
	at  int
	raw []byte
}

// flatten encodes v as a flatJSON.
// routes, the number of mapped routes, sizes its parts (two a route:
// handlers and matcher) and skeleton (about 60 bytes a route) once for a
// server, instead of growing them from nothing (35 MB of garbage for
// 100,000 routes).
func flatten(v any, routes int) *flatJSON {
	e := &encoder{flat: &flatJSON{parts: make([]rawPart, 0, 2*routes+16)}}
	e.flat.skeleton = e.value(make([]byte, 0, 64*routes+64<<10), v)
	e.flat.size += len(e.flat.skeleton)
	return e.flat
}

// bytes returns the whole output, each part released as it is copied.
func (f *flatJSON) bytes() []byte {
	out := make([]byte, 0, f.size)
	f.each(func(b []byte) { out = append(out, b...) })
	return out
}

// writeTo writes the whole output to w, each part released as it is
// written.
func (f *flatJSON) writeTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	f.each(func(b []byte) { bw.Write(b) }) // the error sticks: Flush returns it
	err := bw.Flush()
	return cw.n, err
}

// countingWriter counts the bytes written to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// each calls emit with the output's pieces in order, dropping each part
// once emitted (the fragments' chunks are freed as the routes are
// written, when they are written in the order they were mapped).
func (f *flatJSON) each(emit func([]byte)) {
	prev := 0
	for i := range f.parts {
		p := &f.parts[i]
		if p.at > prev {
			emit(f.skeleton[prev:p.at])
			prev = p.at
		}
		emit(p.raw)
		p.raw = nil
	}
	emit(f.skeleton[prev:])
	f.parts = nil
}

// encoder is the state of an encoding; a nil *encoder writes everything.
type encoder struct {
	// flat, when set, makes the encoder leave the pre-encoded parts out
	// of the output and record them there.
	flat *flatJSON
}

// appendRaw appends pre-encoded JSON (or records it).
func (e *encoder) appendRaw(buf []byte, parts ...[]byte) []byte {
	for _, p := range parts {
		if e != nil && e.flat != nil {
			if len(p) > 0 {
				e.flat.parts = append(e.flat.parts, rawPart{at: len(buf), raw: p})
				e.flat.size += len(p)
			}
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
