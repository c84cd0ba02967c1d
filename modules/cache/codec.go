package cache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// The redis store's encoding of an entry: a version byte, then varints
// and length-prefixed strings, in the order of appendEntry. It is
// several times cheaper to decode than gob, whose every stream carries
// and compiles its type descriptions: a lookup on Redis decodes one
// entry per hit.
const codecVersion = 1

// errCodec is a value the decoder does not understand.
var errCodec = errors.New("cache entry: bad encoding")

// encodeEntry encodes key (the entry's URL part) and e.
func encodeEntry(key string, e *Entry) []byte {
	n := 64 + len(key) + len(e.Body)
	for k, vs := range e.Header {
		n += len(k) + 8
		for _, v := range vs {
			n += len(v) + 4
		}
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion)
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.Stored.UnixNano())
	b = binary.AppendVarint(b, int64(e.InitialAge))
	b = binary.AppendVarint(b, int64(e.Lifetime))
	b = binary.AppendVarint(b, int64(e.SWR))
	b = binary.AppendVarint(b, int64(e.SIE))
	b = binary.AppendUvarint(b, uint64(len(e.Vary)))
	for _, v := range e.Vary {
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, vs := range e.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return appendString(b, string(e.Body))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads what encodeEntry wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCodec
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCodec
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errCodec
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string() string { return string(d.bytes()) }

// decodeEntry decodes what encodeEntry wrote. The body aliases b.
func decodeEntry(b []byte) (string, *Entry, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return "", nil, errCodec
	}
	d := &decoder{b: b[1:]}
	key := d.string()
	e := &Entry{Status: int(d.uvarint())}
	e.Stored = time.Unix(0, d.varint())
	e.InitialAge = time.Duration(d.varint())
	e.Lifetime = time.Duration(d.varint())
	e.SWR = time.Duration(d.varint())
	e.SIE = time.Duration(d.varint())
	if n := d.count(); n > 0 {
		e.Vary = make([]string, n)
		for i := range e.Vary {
			e.Vary[i] = d.string()
		}
	}
	if n := d.count(); n > 0 {
		e.Header = make(http.Header, n)
		for range n {
			k := d.string()
			vs := make([]string, d.count())
			for i := range vs {
				vs[i] = d.string()
			}
			e.Header[k] = vs
		}
	}
	e.Body = d.bytes()
	if d.err == nil && len(d.b) != 0 {
		d.err = errCodec
	}
	if d.err != nil {
		return "", nil, d.err
	}
	if err := e.check(); err != nil {
		return "", nil, err
	}
	return key, e, nil
}
