package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"slices"
)

// textDecoder decodes a base64 request body (application/grpc-web-text)
// as it streams. Clients may encode each message on its own, so padding
// can end any group of four characters, not only the last; the last group
// may also come without padding; whitespace is ignored.
type textDecoder struct {
	src io.ReadCloser
	buf []byte // read buffer
	in  []byte // base64 characters not decoded yet (fewer than 4)
	out []byte // decoded bytes not returned yet
	dec []byte // decode buffer
	err error
}

func newTextDecoder(src io.ReadCloser) *textDecoder {
	return &textDecoder{src: src, buf: make([]byte, 32<<10)}
}

// errTruncated is returned when the body ends with a single base64
// character (a group of four may otherwise end unpadded).
var errTruncated = errors.New("grpc-web-text: body ends inside a base64 group")

// Read implements io.Reader.
func (d *textDecoder) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			if d.err == io.EOF && len(d.in) > 0 {
				// Unpadded end: two or three characters are still bytes.
				in := d.in
				d.in = d.in[:0]
				if len(in) == 1 {
					d.err = errTruncated
					return 0, d.err
				}
				out := make([]byte, base64.RawStdEncoding.DecodedLen(len(in)))
				n, err := base64.RawStdEncoding.Decode(out, in)
				if err != nil {
					d.err = err
					return 0, d.err
				}
				d.out = out[:n]
				continue
			}
			return 0, d.err
		}
		n, err := d.src.Read(d.buf)
		for _, c := range d.buf[:n] {
			switch c {
			case ' ', '\t', '\r', '\n':
			default:
				d.in = append(d.in, c)
			}
		}
		whole := len(d.in) / 4 * 4
		if whole > 0 {
			out, derr := decodeGroups(d.dec[:0], d.in[:whole])
			d.dec = out
			d.out = out
			d.in = d.in[:copy(d.in, d.in[whole:])]
			if derr != nil {
				err = derr
			}
		}
		d.err = err
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

// Close closes the source body.
func (d *textDecoder) Close() error { return d.src.Close() }

// decodeGroups appends the decoding of s (whole groups of four) to dst;
// padded groups may appear anywhere.
func decodeGroups(dst, s []byte) ([]byte, error) {
	for len(s) > 0 {
		end := len(s)
		if i := bytes.IndexByte(s, '='); i >= 0 {
			end = (i/4 + 1) * 4
		}
		n, need := len(dst), base64.StdEncoding.DecodedLen(end)
		dst = slices.Grow(dst, need)[:n+need]
		m, err := base64.StdEncoding.Decode(dst[n:], s[:end])
		dst = dst[:n+m]
		if err != nil {
			return dst, err
		}
		s = s[end:]
	}
	return dst, nil
}
