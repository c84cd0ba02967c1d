package framing

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// loopConn replays the same stream forever: the wrapper's cost without
// a socket's.
type loopConn struct {
	data []byte
	off  int
}

func (l *loopConn) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func (l *loopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (l *loopConn) Close() error                     { return nil }
func (l *loopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (l *loopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (l *loopConn) SetDeadline(time.Time) error      { return nil }
func (l *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (l *loopConn) SetWriteDeadline(time.Time) error { return nil }

// benchRequest is a typical browser GET (about 400 bytes).
const benchRequest = "GET /api/v1/items?page=2 HTTP/1.1\r\nHost: app.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\nConnection: keep-alive\r\n\r\n"

// BenchmarkFramingRead measures what the wrapper adds to the server's
// reads, per request: GETs (one scan of the head), POSTs with a 1 KiB
// Content-Length body, and chunked POSTs; "raw" reads the same bytes
// without the wrapper.
func BenchmarkFramingRead(b *testing.B) {
	body := string(make([]byte, 1024))
	for _, bc := range []struct {
		name, req string
	}{
		{"get", benchRequest},
		{"post-1k", "POST /upload HTTP/1.1\r\nHost: app.example.com\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + body},
		{"chunked-1k", "POST /upload HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n" + body[:512] + "\r\n200\r\n" + body[:512] + "\r\n0\r\n\r\n"},
	} {
		// Eight pipelined requests per pass: reads split them anywhere.
		var stream []byte
		for range 8 {
			stream = append(stream, bc.req...)
		}
		for _, wrapped := range []bool{false, true} {
			name := bc.name + "/raw"
			if wrapped {
				name = bc.name + "/wrapped"
			}
			b.Run(name, func(b *testing.B) {
				var r io.Reader = &loopConn{data: stream}
				if wrapped {
					r = wrap(&Framing{}, r.(net.Conn), 1<<20)
				}
				p := make([]byte, 4096) // Go's read size
				b.SetBytes(int64(len(bc.req)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					for need := len(bc.req); need > 0; {
						n, err := r.Read(p)
						if err != nil {
							b.Fatal(err)
						}
						need -= n
					}
				}
				if wrapped && r.(*conn).mode != modeCheck {
					b.Fatal("the wrapper stopped checking")
				}
			})
		}
	}
}

// BenchmarkGoReadRequest is Go's own parsing of the benchmark's GET, for
// scale: what the server spends on a request the wrapper scanned.
func BenchmarkGoReadRequest(b *testing.B) {
	br := bufio.NewReader(&loopConn{data: []byte(benchRequest)})
	b.SetBytes(int64(len(benchRequest)))
	b.ReportAllocs()
	for range b.N {
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}
