package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// hostBackend is a real HTTP/1.1 backend that records, for each request,
// "name host path body" and its headers.
type hostBackend struct {
	name string
	addr string
	mu   sync.Mutex
	seen []string
	hdr  []http.Header
}

func startHostBackend(t *testing.T, name string) *hostBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &hostBackend{name: name, addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			body = append(body, "<body error>"...)
		}
		b.mu.Lock()
		b.seen = append(b.seen, fmt.Sprintf("%s %s %s %s", name, r.Host, r.URL.RequestURI(), body))
		b.hdr = append(b.hdr, r.Header.Clone())
		b.mu.Unlock()
		fmt.Fprintf(w, "%s %s %s", name, r.Host, r.URL.RequestURI())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *hostBackend) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

func (b *hostBackend) reset() {
	b.mu.Lock()
	b.seen, b.hdr = nil, nil
	b.mu.Unlock()
}

// h2Field is one header field of a raw HTTP/2 request, in the order sent.
type h2Field struct{ name, value string }

// h2Result is what a raw HTTP/2 exchange ended with: the response
// status and body, or the stream reset / GOAWAY code.
type h2Result struct {
	status int
	body   string
	reset  string // "RST_STREAM <code>" or "GOAWAY <code>"
}

func (r h2Result) String() string {
	if r.reset != "" {
		return r.reset
	}
	return fmt.Sprintf("%d %q", r.status, r.body)
}

// rawH2 sends one request on a new TLS connection with golang.org/x/net's
// framer (no client-side validation: fields go out as given) and reads
// the answer. data, if not nil, is sent in one DATA frame ending the
// stream; trailers, if any, in a HEADERS frame after it.
func rawH2(t *testing.T, addr string, fields []h2Field, data []byte, trailers []h2Field) h2Result {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // test certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, not h2", p)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	encode := func(fs []h2Field) []byte {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for _, f := range fs {
			enc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
		}
		return buf.Bytes()
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: 1, BlockFragment: encode(fields), EndHeaders: true, EndStream: data == nil && trailers == nil,
	}); err != nil {
		t.Fatal(err)
	}
	if data != nil {
		if err := fr.WriteData(1, trailers == nil, data); err != nil {
			t.Fatal(err)
		}
	}
	if trailers != nil {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{
			StreamID: 1, BlockFragment: encode(trailers), EndHeaders: true, EndStream: true,
		}); err != nil {
			t.Fatal(err)
		}
	}
	var res h2Result
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if res.status != 0 {
				return res
			}
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			for _, hf := range f.Fields {
				if hf.Name == ":status" {
					fmt.Sscan(hf.Value, &res.status)
				}
			}
			if f.StreamEnded() {
				return res
			}
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			res.body += string(f.Data())
			if f.StreamEnded() {
				return res
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				res.reset = "RST_STREAM " + f.ErrCode.String()
				return res
			}
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeNo || res.status == 0 {
				res.reset = "GOAWAY " + f.ErrCode.String()
				return res
			}
		}
	}
}

// TestH2DowngradeHostAndFraming sends hostile HTTP/2 requests (raw
// frames over TLS) through a route chosen by host to HTTP/1.1 backends:
// a `host` field that disagrees with :authority, or an absolute :path, is
// refused; without :authority, `host` routes and is the backend's Host;
// requests HTTP/2 forbids (connection-specific fields, CR/LF/NUL in
// values, upper-case names, a body longer or shorter than its
// content-length, missing or empty :path) never reach a backend complete
// — in particular no bytes past a declared content-length reach the
// backend's keep-alive connection as a request of their own.
func TestH2DowngradeHostAndFraming(t *testing.T) {
	a := startHostBackend(t, "A")
	b := startHostBackend(t, "B")
	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1", "a.test", "b.test")
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "tls" {
        address %q
        protocol "https"
        tls { cert-file %q; key-file %q; }
    }
}
routes {
    route "a" {
        matches { host "a.test"; }
        upstream "a"
    }
    route "b" {
        matches { host "b.test"; }
        upstream "b"
    }
}
upstreams {
    upstream "a" { target %q; }
    upstream "b" { target %q; }
}
`, listen, cert, key, a.addr, b.addr))

	req := func(authority, path string, extra ...h2Field) []h2Field {
		fs := []h2Field{{":method", "GET"}, {":scheme", "https"}, {":path", path}}
		if authority != "" {
			fs = append(fs, h2Field{":authority", authority})
		}
		return append(fs, extra...)
	}
	post := func(authority string, extra ...h2Field) []h2Field {
		fs := []h2Field{{":method", "POST"}, {":scheme", "https"}, {":path", "/up"}, {":authority", authority}}
		return append(fs, extra...)
	}
	reset := func() { a.reset(); b.reset() }

	t.Run("authority and host disagree", func(t *testing.T) {
		reset()
		res := rawH2(t, listen, req("a.test", "/x", h2Field{"host", "b.test"}), nil, nil)
		if got := b.requests(); len(got) != 0 {
			t.Fatalf("backend B got %q: a host field that disagrees with :authority chose the route", got)
		}
		// Go's HTTP/2 server refuses it (RFC 9113 §8.3.1).
		if got := a.requests(); res.status == http.StatusOK || len(got) != 0 {
			t.Fatalf("answer %v; backend A got %q, want a refusal", res, got)
		}
	})
	t.Run("host only", func(t *testing.T) {
		reset()
		res := rawH2(t, listen, req("", "/y", h2Field{"host", "b.test"}), nil, nil)
		if res.status != http.StatusOK || res.body != "B b.test /y" {
			t.Fatalf("got %v, want B with Host b.test", res)
		}
	})
	t.Run("absolute path", func(t *testing.T) {
		reset()
		res := rawH2(t, listen, req("a.test", "https://b.test/z"), nil, nil)
		if got := b.requests(); len(got) != 0 {
			t.Fatalf("backend B got %q from an absolute :path (answer %v)", got, res)
		}
		// Go's HTTP/2 server refuses it (RFC 9113 §8.3.1: origin-form).
		if got := a.requests(); res.status == http.StatusOK || len(got) != 0 {
			t.Fatalf("answer %v; backend A got %q, want a refusal", res, got)
		}
	})

	refused := []struct {
		name   string
		fields []h2Field
		data   []byte
	}{
		{"connection field", req("a.test", "/c", h2Field{"connection", "close"}), nil},
		{"keep-alive field", req("a.test", "/c", h2Field{"keep-alive", "timeout=5"}), nil},
		{"transfer-encoding", post("a.test", h2Field{"transfer-encoding", "chunked"}), []byte("5\r\nhello\r\n0\r\n\r\n")},
		{"te other than trailers", req("a.test", "/c", h2Field{"te", "gzip"}), nil},
		{"upgrade field", req("a.test", "/c", h2Field{"upgrade", "websocket"}), nil},
		{"CRLF in a value", req("a.test", "/c", h2Field{"x-a", "1\r\nX-Injected: yes"}), nil},
		{"LF in a value", req("a.test", "/c", h2Field{"x-a", "1\nX-Injected: yes"}), nil},
		{"NUL in a value", req("a.test", "/c", h2Field{"x-a", "1\x00"}), nil},
		{"upper-case name", req("a.test", "/c", h2Field{"X-Upper", "1"}), nil},
		{"space in a name", req("a.test", "/c", h2Field{"x a", "1"}), nil},
		{"empty :path", req("a.test", ""), nil},
		{"no :path", []h2Field{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}}, nil},
		{"CRLF in :authority", req("a.test\r\nX-Injected: yes", "/c"), nil},
		{"body longer than content-length", post("a.test", h2Field{"content-length", "5"}),
			[]byte("helloGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n")},
		{"body shorter than content-length", post("a.test", h2Field{"content-length", "50"}), []byte("hello")},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			reset()
			res := rawH2(t, listen, tc.fields, tc.data, nil)
			if res.status >= 200 && res.status < 300 {
				t.Errorf("answered %v; want a refusal", res)
			}
			// let a request that went through reach the backends
			time.Sleep(50 * time.Millisecond)
			for _, be := range []*hostBackend{a, b} {
				for _, got := range be.requests() {
					if strings.Contains(got, "smuggled") || strings.Contains(got, "Injected") {
						t.Fatalf("backend got %q", got)
					}
					if !strings.HasSuffix(got, "<body error>") {
						t.Errorf("backend %s got a complete request %q (answer %v)", be.name, got, res)
					}
				}
			}
		})
	}

	t.Run("two content-lengths", func(t *testing.T) {
		// Go's HTTP/2 server frames the body by the first value; the
		// backend gets that one length and exactly that many bytes (no
		// desynchronisation of its keep-alive connection).
		reset()
		res := rawH2(t, listen, post("a.test", h2Field{"content-length", "5"}, h2Field{"content-length", "6"}),
			[]byte("helloGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"), nil)
		time.Sleep(50 * time.Millisecond)
		for _, got := range a.requests() {
			if strings.Contains(got, "smuggled") || !strings.HasSuffix(got, "<body error>") {
				t.Fatalf("backend A got %q (answer %v)", got, res)
			}
		}
		reset()
		res = rawH2(t, listen, post("a.test", h2Field{"content-length", "5"}, h2Field{"content-length", "6"}), []byte("hello"), nil)
		if got := a.requests(); res.status == http.StatusOK && (len(got) != 1 || got[0] != "A a.test /up hello") {
			t.Fatalf("backend A got %q (answer %v)", got, res)
		}
	})
	t.Run("request trailers", func(t *testing.T) {
		reset()
		res := rawH2(t, listen, post("a.test", h2Field{"te", "trailers"}), []byte("hello"), []h2Field{{"x-checksum", "abc"}})
		if res.status != http.StatusOK {
			t.Fatalf("got %v", res)
		}
		if got := a.requests(); len(got) != 1 || got[0] != "A a.test /up hello" {
			t.Fatalf("backend A got %q", got)
		}
	})
}
