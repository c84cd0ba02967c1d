package framing

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"testing"
)

// FuzzFraming feeds a client stream through the wrapper in several read
// patterns. It must never panic; what the server reads must not depend on
// how the stream was split; and Go's own parser, reading it, must never
// see a head with both Content-Length and Transfer-Encoding, a folded
// line, or a Transfer-Encoding other than one "chunked".
func FuzzFraming(f *testing.F) {
	for _, in := range goodStreams {
		f.Add([]byte(in), uint8(3))
	}
	for _, tc := range badStreams {
		f.Add([]byte(tc.in), uint8(1))
	}
	for _, tc := range brokenStreams {
		f.Add([]byte(tc.in), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole, errWhole := run(t, in, nil, 4096)
		pieces, errPieces := run(t, in, []int{int(split%16) + 1, 1, int(split) + 1}, 14)
		if !bytes.Equal(whole, pieces) || errWhole != errPieces {
			t.Fatalf("output depends on the split:\n%q (%v)\n%q (%v)", whole, errWhole, pieces, errPieces)
		}
		if sent, ok := bytes.CutSuffix(whole, rejectLine); !bytes.HasPrefix(in, whole) && (!ok || !bytes.HasPrefix(in, sent)) {
			t.Fatalf("output %q is not a prefix of the input, with or without the reject line", whole)
		}
		checkWithGo(t, whole)
	})
}

// run drains the wrapper over in, read in pieces of sizes by the server's
// reads of readSize.
func run(t *testing.T, in []byte, sizes []int, readSize int) ([]byte, error) {
	c := wrap(newTestFraming(t, nil), &streamConn{src: in, sizes: sizes}, 1<<20)
	return drain(t, c, readSize)
}

// checkWithGo reads out with Go's request parser, checking each head's
// raw fields before Go interprets them.
func checkWithGo(t *testing.T, out []byte) {
	br := bufio.NewReaderSize(bytes.NewReader(out), len(out)+16)
	for {
		if _, err := br.Peek(1); err != nil {
			return
		}
		rest, _ := br.Peek(br.Buffered())
		if end := headEnd(rest); end > 0 && acceptedByGo(rest[:end]) {
			head := rest[:end]
			for i, line := range bytes.Split(head, []byte("\n")) {
				if i > 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
					t.Fatalf("Go read a folded line in %q", head)
				}
			}
			tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
			reqLine, _ := tp.ReadLine()
			if bytes.HasPrefix([]byte(reqLine), []byte("PRI ")) {
				return // HTTP/2 from here
			}
			if h, err := tp.ReadMIMEHeader(); err == nil {
				te, cl := h.Values("Transfer-Encoding"), h.Values("Content-Length")
				if len(te) > 0 && len(cl) > 0 {
					t.Fatalf("Go read Content-Length and Transfer-Encoding in %q", head)
				}
				if len(te) > 1 || len(te) == 1 && !bytes.EqualFold([]byte(te[0]), []byte("chunked")) {
					t.Fatalf("Go read Transfer-Encoding %q", te)
				}
			}
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
	}
}

// acceptedByGo reports whether Go's parser takes head as a request.
func acceptedByGo(head []byte) bool {
	_, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	return err == nil
}

// headEnd is the length of the head at the start of b (through its
// first empty line), or 0.
func headEnd(b []byte) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i
		}
	}
	return 0
}
