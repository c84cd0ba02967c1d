package kdladapter

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// encode writes v as JSON with object keys sorted, like encoding/json but
// without reflection: the adapter's output is built only from the types
// below, and encoding a large config is most of the adapter's time.
func encode(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case obj:
		keys := make([]string, 0, len(x))
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
			buf = encode(buf, x[k])
		}
		return append(buf, '}')
	case map[string][]string:
		o := make(obj, len(x))
		for k, s := range x {
			o[k] = s
		}
		return encode(buf, o)
	case map[string]string:
		o := make(obj, len(x))
		for k, s := range x {
			o[k] = s
		}
		return encode(buf, o)
	case []obj:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return encode(b, x[i]) })
	case []any:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return encode(b, x[i]) })
	case []string:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return appendString(b, x[i]) })
	case []int64:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return strconv.AppendInt(b, x[i], 10) })
	case []int:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return strconv.AppendInt(b, int64(x[i]), 10) })
	case []json.RawMessage:
		return encodeList(buf, len(x), func(b []byte, i int) []byte { return append(b, x[i]...) })
	case json.RawMessage:
		return append(buf, x...)
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
