package grpcweb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/sentinel-proxy/sentinel/internal/grpcstatus"
)

// frame builds a gRPC message frame.
func frame(flag byte, payload string) []byte {
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	b[0] = flag
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// webFrame is a parsed gRPC-Web response frame.
type webFrame struct {
	flag    byte
	payload string
}

// parseFrames splits a (decoded) gRPC-Web body into frames.
func parseFrames(t *testing.T, b []byte) []webFrame {
	t.Helper()
	var out []webFrame
	for len(b) > 0 {
		if len(b) < frameHeaderLen {
			t.Fatalf("short frame header %q", b)
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if len(b) < frameHeaderLen+n {
			t.Fatalf("short frame: want %d bytes, have %d", n, len(b)-frameHeaderLen)
		}
		out = append(out, webFrame{b[0], string(b[5 : 5+n])})
		b = b[5+n:]
	}
	return out
}

// decodeText decodes a -text body made of padded base64 chunks.
func decodeText(t *testing.T, s string) []byte {
	t.Helper()
	out, err := decodeGroups(nil, []byte(s))
	if err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return out
}

// flushRecorder counts flushes.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushRecorder) Flush() {
	f.flushes++
	f.ResponseRecorder.Flush()
}

func TestParseContentType(t *testing.T) {
	for _, tc := range []struct {
		in    string
		ok    bool
		text  bool
		codec string
	}{
		{"application/grpc-web", true, false, ""},
		{"application/grpc-web+proto", true, false, "+proto"},
		{"Application/GRPC-Web+JSON; charset=utf-8", true, false, "+json"},
		{"application/grpc-web-text", true, true, ""},
		{"application/grpc-web-text+proto", true, true, "+proto"},
		{"application/grpc", false, false, ""},
		{"application/grpc+proto", false, false, ""},
		{"application/grpc-webx", false, false, ""},
		{"application/grpc-web+", false, false, ""},
		{"application/json", false, false, ""},
		{"", false, false, ""},
		{"not a media type;;", false, false, ""},
	} {
		ct, ok := parseContentType(tc.in)
		if ok != tc.ok || ok && (ct.text != tc.text || ct.codec != tc.codec) {
			t.Errorf("parseContentType(%q) = %+v, %v; want text=%v codec=%q ok=%v", tc.in, ct, ok, tc.text, tc.codec, tc.ok)
		}
	}
}

func TestPassThrough(t *testing.T) {
	for _, tc := range []struct{ method, ct string }{
		{"POST", "application/json"},
		{"POST", "application/grpc"},
		{"GET", "application/grpc-web"},
		{"OPTIONS", "application/grpc-web"},
	} {
		req := httptest.NewRequest(tc.method, "/pkg.Svc/M", strings.NewReader("body"))
		req.Header.Set("Content-Type", tc.ct)
		rec := httptest.NewRecorder()
		var seen *http.Request
		err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			seen = r
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write([]byte("raw"))
			w.Header().Set("Grpc-Status", "0")
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if seen.Header.Get("Content-Type") != tc.ct || seen.Header.Get("Te") != "" {
			t.Errorf("%s %s: request changed: %v", tc.method, tc.ct, seen.Header)
		}
		if rec.Body.String() != "raw" || rec.Header().Get("Content-Type") != "application/grpc" {
			t.Errorf("%s %s: response changed: %q %v", tc.method, tc.ct, rec.Body.String(), rec.Header())
		}
	}
}

// grpcNext is a next handler answering like reverse_proxy does with a
// gRPC upstream: header, frames written in chunks of chunk bytes, then
// trailers with the http.TrailerPrefix.
func grpcNext(t *testing.T, gotBody *[]byte, chunk int, frames [][]byte, trailers http.Header) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		*gotBody = b
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Content-Length", "123")
		w.WriteHeader(http.StatusOK)
		all := bytes.Join(frames, nil)
		for len(all) > 0 {
			n := min(chunk, len(all))
			if _, err := w.Write(all[:n]); err != nil {
				return err
			}
			all = all[n:]
		}
		for k, vv := range trailers {
			for _, v := range vv {
				w.Header().Add(http.TrailerPrefix+k, v)
			}
		}
		return nil
	})
}

func TestBinaryUnary(t *testing.T) {
	msg := frame(0, "hello")
	req := httptest.NewRequest("POST", "/pkg.Svc/M", bytes.NewReader(msg))
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	var got []byte
	var seen http.Header
	next := grpcNext(t, &got, 2, [][]byte{frame(0, "world")}, http.Header{"Grpc-Status": {"0"}, "X-Meta": {"a", "b"}})
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Clone()
		return next.ServeHTTP(w, r)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if seen.Get("Content-Type") != "application/grpc+proto" || seen.Get("Te") != "trailers" {
		t.Errorf("request headers: %v", seen)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("upstream got %q", got)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/grpc-web+proto" {
		t.Errorf("Content-Type %q", ct)
	}
	if rec.Header().Get("Content-Length") != "" {
		t.Error("Content-Length kept")
	}
	frames := parseFrames(t, rec.Body.Bytes())
	if len(frames) != 2 || frames[0] != (webFrame{0, "world"}) ||
		frames[1] != (webFrame{0x80, "grpc-status: 0\r\nx-meta: a\r\nx-meta: b\r\n"}) {
		t.Errorf("frames %q", frames)
	}
	if rec.flushes < 2 {
		t.Errorf("flushes = %d, want one per frame", rec.flushes)
	}
}

func TestTextStreaming(t *testing.T) {
	// Two messages, each encoded on its own (padding in the middle), with
	// a line break, as browser clients may send them.
	body := base64.StdEncoding.EncodeToString(frame(0, "a")) + "\r\n" + base64.StdEncoding.EncodeToString(frame(0, "bcd"))
	req := httptest.NewRequest("POST", "/pkg.Svc/M", iotest.OneByteReader(strings.NewReader(body)))
	req.Header.Set("Content-Type", "application/grpc-web-text")
	req.Header.Set("Content-Length", fmt.Sprint(len(body)))
	req.ContentLength = int64(len(body))
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	var got []byte
	var seen *http.Request
	// Three frames of sizes that are not multiples of 3, written one byte
	// at a time: each frame is flushed as its own padded base64 chunk.
	out := [][]byte{frame(0, "x"), frame(0, "yz"), frame(0, strings.Repeat("w", 100))}
	next := grpcNext(t, &got, 1, out, http.Header{"Grpc-Status": {"0"}})
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r
		return next.ServeHTTP(w, r)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if want := append(frame(0, "a"), frame(0, "bcd")...); !bytes.Equal(got, want) {
		t.Errorf("upstream got %q, want %q", got, want)
	}
	if seen.ContentLength != -1 || seen.Header.Get("Content-Length") != "" || seen.Header.Get("Content-Type") != "application/grpc" {
		t.Errorf("request: CL %d, headers %v", seen.ContentLength, seen.Header)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/grpc-web-text" {
		t.Errorf("Content-Type %q", ct)
	}
	s := rec.Body.String()
	if strings.Count(s, "=") == 0 {
		t.Errorf("expected padded chunks in %q", s)
	}
	frames := parseFrames(t, decodeText(t, s))
	if len(frames) != 4 || frames[2].payload != strings.Repeat("w", 100) || frames[3].flag != 0x80 {
		t.Errorf("frames %q", frames)
	}
	// The chunks are separately decodable: frame by frame.
	if want := base64.StdEncoding.EncodeToString(frame(0, "x")); !strings.HasPrefix(s, want) {
		t.Errorf("first chunk of %q is not %q", s, want)
	}
	if rec.flushes < 4 {
		t.Errorf("flushes = %d, want one per frame", rec.flushes)
	}
}

func TestTextCodecFromRequest(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/grpc-web-text+proto")
	rec := httptest.NewRecorder()
	var got []byte
	if err := (Handler{}).ServeHTTP(rec, req, grpcNext(t, &got, 10, nil, http.Header{"Grpc-Status": {"0"}})); err != nil {
		t.Fatal(err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/grpc-web-text+proto" {
		t.Errorf("Content-Type %q", ct)
	}
	frames := parseFrames(t, decodeText(t, rec.Body.String()))
	if len(frames) != 1 || frames[0].payload != "grpc-status: 0\r\n" {
		t.Errorf("frames %q", frames)
	}
}

func TestDeclaredTrailers(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/grpc+json")
		w.Header().Set("Trailer", "Grpc-Status, grpc-message")
		w.Write(frame(1, "zz")) // compressed flag passes through
		w.Header().Set("Grpc-Status", "5")
		w.Header().Set("Grpc-Message", "not found")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Header().Get("Trailer") != "" || rec.Header().Get("Content-Type") != "application/grpc-web+json" {
		t.Errorf("headers %v", rec.Header())
	}
	frames := parseFrames(t, rec.Body.Bytes())
	if len(frames) != 2 || frames[0] != (webFrame{1, "zz"}) || frames[1].payload != "grpc-status: 5\r\ngrpc-message: not found\r\n" {
		t.Errorf("frames %q", frames)
	}
}

func TestTrailersOnly(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "12")
		w.Header().Set("Grpc-Message", "unknown method")
		w.WriteHeader(http.StatusOK)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Grpc-Status") != "12" || rec.Header().Get("Content-Type") != "application/grpc-web" {
		t.Errorf("got %v %q", rec.Header(), rec.Body.String())
	}
}

func TestImplicitHeader(t *testing.T) {
	// A next handler that sets headers but never writes: the response is
	// still translated (trailers-only here).
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "0")
		return nil
	}))
	if err != nil || rec.Header().Get("Grpc-Status") != "0" || rec.Header().Get("Content-Type") != "application/grpc-web" {
		t.Errorf("err %v, headers %v", err, rec.Header())
	}
}

func TestMissingStatus(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	var got []byte
	if err := (Handler{}).ServeHTTP(rec, req, grpcNext(t, &got, 3, [][]byte{frame(0, "m")}, nil)); err != nil {
		t.Fatal(err)
	}
	frames := parseFrames(t, rec.Body.Bytes())
	if len(frames) != 2 || !strings.HasPrefix(frames[1].payload, "grpc-status: 13\r\n") {
		t.Errorf("frames %q", frames)
	}
}

func TestNonGRPCResponse(t *testing.T) {
	// An upstream that is not gRPC: its answer (and trailers) pass through.
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Trailer", "X-Declared")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("<h1>nope</h1>"))
		w.Header().Set("X-Declared", "1")
		w.Header().Set(http.TrailerPrefix+"X-Late", "2")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Code != 404 || rec.Body.String() != "<h1>nope</h1>" || rec.Header().Get("Content-Type") != "text/html" {
		t.Errorf("got %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
	res := rec.Result()
	io.ReadAll(res.Body)
	if res.Trailer.Get("X-Declared") != "1" || res.Trailer.Get("X-Late") != "2" {
		t.Errorf("trailers %v", res.Trailer)
	}
}

func TestErrorBeforeHeader(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused")), "14"},
		{caddyhttp.Error(http.StatusServiceUnavailable, errors.New("no upstreams available")), "14"},
		{caddyhttp.Error(http.StatusGatewayTimeout, errors.New("timeout")), "14"},
		{caddyhttp.Error(http.StatusTooManyRequests, errors.New("slow down")), "14"},
		{caddyhttp.Error(http.StatusUnauthorized, errors.New("who")), "16"},
		{caddyhttp.Error(http.StatusForbidden, errors.New("no")), "7"},
		{caddyhttp.Error(http.StatusNotFound, errors.New("none")), "12"},
		{caddyhttp.Error(http.StatusBadRequest, errors.New("bad")), "13"},
		{caddyhttp.Error(http.StatusRequestEntityTooLarge, errors.New("big")), "2"},
		{errors.New("plain"), "2"},
	} {
		req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
		req.Header.Set("Content-Type", "application/grpc-web-text")
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Before", "kept") // set by an earlier handler
		err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return tc.err
		}))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Code != 200 || rec.Header().Get("Grpc-Status") != tc.code || rec.Header().Get("Grpc-Message") == "" ||
			rec.Header().Get("Content-Type") != "application/grpc-web-text" || rec.Header().Get("X-Before") != "kept" {
			t.Errorf("%v: %d %v", tc.err, rec.Code, rec.Header())
		}
	}
}

func TestErrorClientGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return caddyhttp.Error(499, r.Context().Err())
	}))
	if err != nil || rec.Header().Get("Grpc-Status") != "2" {
		t.Errorf("%v %v", err, rec.Header())
	}
}

func TestErrorAfterHeader(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/grpc")
		w.Write(frame(0, "one"))
		return errors.New("upstream went away")
	}))
	if err != nil {
		t.Fatal(err)
	}
	frames := parseFrames(t, rec.Body.Bytes())
	if len(frames) != 2 || !strings.HasPrefix(frames[1].payload, "grpc-status: 14\r\n") {
		t.Errorf("frames %q", frames)
	}

	// Inside a frame the error is returned: nothing can end the stream.
	rec = httptest.NewRecorder()
	boom := errors.New("cut")
	err = Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/grpc")
		w.Write(frame(0, "one")[:6])
		return boom
	}))
	if err != boom {
		t.Errorf("err = %v", err)
	}
}

func TestAbortHandler(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/grpc")
		w.Write(frame(0, "one"))
		panic(http.ErrAbortHandler)
	}))
	if err != nil {
		t.Fatal(err)
	}
	frames := parseFrames(t, rec.Body.Bytes())
	if len(frames) != 2 || !strings.HasPrefix(frames[1].payload, "grpc-status: 14\r\ngrpc-message: upstream stream aborted") {
		t.Errorf("frames %q", frames)
	}

	for name, next := range map[string]caddyhttp.HandlerFunc{
		"mid-frame abort": func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/grpc")
			w.Write(frame(0, "one")[:3])
			panic(http.ErrAbortHandler)
		},
		"other panic": func(w http.ResponseWriter, r *http.Request) error { panic("boom") },
		"ends mid-frame": func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/grpc")
			w.Write(frame(0, "one")[:7])
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
			req.Header.Set("Content-Type", "application/grpc-web")
			Handler{}.ServeHTTP(httptest.NewRecorder(), req, next)
		})
	}
}

// codeLog records the status codes written.
type codeLog struct {
	*flushRecorder
	codes []int
}

func (c *codeLog) WriteHeader(code int) {
	c.codes = append(c.codes, code)
	if code >= 200 {
		c.flushRecorder.WriteHeader(code)
	}
}

func TestInformationalAndFlush(t *testing.T) {
	req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	req.Header.Set("Content-Type", "application/grpc-web")
	rec := &codeLog{flushRecorder: &flushRecorder{ResponseRecorder: httptest.NewRecorder()}}
	err := Handler{}.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Link", "</x>")
		w.WriteHeader(http.StatusEarlyHints)
		if rec.Header().Get("Link") != "</x>" {
			t.Errorf("early hints headers: %v", rec.Header())
		}
		http.NewResponseController(w).Flush() // writes the header
		w.WriteHeader(http.StatusTeapot)      // ignored
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok || u.Unwrap() != rec {
			t.Error("Unwrap")
		}
		w.(http.Flusher).Flush()
		return nil
	}))
	if err != nil || fmt.Sprint(rec.codes) != "[103 200]" || rec.flushes != 2 {
		t.Errorf("err %v, codes %v, flushes %d", err, rec.codes, rec.flushes)
	}
}

// failingWriter fails every write.
type failingWriter struct{ h http.Header }

func (f failingWriter) Header() http.Header     { return f.h }
func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }
func (failingWriter) WriteHeader(int)           {}

func TestWriteErrors(t *testing.T) {
	for _, text := range []bool{false, true} {
		rw := newResponseWriter(failingWriter{http.Header{}}, webContentType{text: text})
		rw.Header().Set("Content-Type", "application/grpc")
		if n, err := rw.Write(frame(0, "abcdef")); err == nil || n != 0 {
			t.Errorf("text=%v: header write: n=%d err=%v", text, n, err)
		}
		rw = newResponseWriter(failingWriter{http.Header{}}, webContentType{text: text})
		rw.Header().Set("Content-Type", "application/grpc")
		rw.Write(frame(0, "abcdef")[:5])
		if _, err := rw.Write([]byte("abcdef")); err == nil {
			t.Errorf("text=%v: payload write: no error", text)
		}
		rw = newResponseWriter(failingWriter{http.Header{}}, webContentType{text: text})
		rw.Header().Set("Content-Type", "application/grpc")
		rw.WriteHeader(200)
		if err := rw.end(statusTrailer(0, "")); err == nil {
			t.Errorf("text=%v: trailer write: no error", text)
		}
	}
	// An empty frame ends (and flushes) as soon as its header is read.
	rw := newResponseWriter(failingWriter{http.Header{}}, webContentType{text: true})
	rw.Header().Set("Content-Type", "application/grpc")
	if _, err := rw.Write(frame(0, "")[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Write(frame(0, "")[2:]); err == nil {
		t.Error("empty frame: no error")
	}
}

func TestTextDecoder(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", "", nil},
		{"aGVsbG8=", "hello", nil},
		{"aGk=aGk=\naGk=", "hihihi", nil},
		{"aGVsbG8gd29ybGQ", "hello world", nil},
		{"aGk=aGk", "hihi", nil},
		{"aGVsbG8", "hello", nil},
		{"aGVsb", "hel", errTruncated},
		{"aGVs*A", "hel", base64.CorruptInputError(0)},
		{"a!!!", "", base64.CorruptInputError(1)},
	} {
		d := newTextDecoder(io.NopCloser(iotest.HalfReader(strings.NewReader(tc.in))))
		got, err := io.ReadAll(d)
		if string(got) != tc.want || !errors.Is(err, tc.err) && err != tc.err {
			t.Errorf("%q: got %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
		if d.Close() != nil {
			t.Error("close")
		}
	}
}

func TestTrailerFrameAndMessage(t *testing.T) {
	f := trailerFrame(http.Header{"B-Meta": {"2"}, "A-Meta": {"1"}, "Grpc-Message": {"m"}, "Grpc-Status": {"3"}})
	frames := parseFrames(t, f)
	if len(frames) != 1 || frames[0] != (webFrame{0x80, "grpc-status: 3\r\ngrpc-message: m\r\na-meta: 1\r\nb-meta: 2\r\n"}) {
		t.Errorf("%q", frames)
	}
	if got := grpcstatus.EncodeMessage("50% off\nnow é"); got != "50%25 off%0Anow %C3%A9" {
		t.Errorf("EncodeMessage = %q", got)
	}
}

func TestCaddyModule(t *testing.T) {
	var h Handler
	if id := h.CaddyModule().ID; id != "http.handlers.grpc_web" {
		t.Errorf("ID %q", id)
	}
	if _, ok := h.CaddyModule().New().(*Handler); !ok {
		t.Error("New")
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := h.Provision(ctx); err != nil || h.logger == nil {
		t.Errorf("Provision: %v", err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"grpc_web", false},
		{"grpc_web {\n}", false},
		{"grpc_web extra", true},
		{"grpc_web {\n allowed_origins *\n}", true},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.in, err)
		}
	}
}

func TestCaddyfileOrder(t *testing.T) {
	// Written after reverse_proxy, grpc_web still runs before it.
	src := ":8080 {\n\treverse_proxy h2c://127.0.0.1:9000\n\tgrpc_web\n}\n"
	out, warns, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings %v", warns)
	}
	s := string(out)
	i, j := strings.Index(s, `"handler":"grpc_web"`), strings.Index(s, `"handler":"reverse_proxy"`)
	if i < 0 || j < 0 || i > j {
		t.Errorf("grpc_web not before reverse_proxy: %s", s)
	}
	if _, err := parseCaddyfile(httpcaddyfileHelper("grpc_web a")); err == nil {
		t.Error("parseCaddyfile accepted an argument")
	}
}

func httpcaddyfileHelper(src string) httpcaddyfile.Helper {
	return httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(src)}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "200m": 200 * time.Millisecond,
		"5u": 5 * time.Microsecond, "99999999n": 99999999, "99999999H": math.MaxInt64,
		"": -1, "m": -1, "123456789S": -1, "+5S": -1, "-5S": -1, "5x": -1, "5": -1,
	} {
		got, ok := grpcstatus.ParseTimeout(in)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("grpcstatus.ParseTimeout(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDeadline(t *testing.T) {
	newReq := func() *http.Request {
		req := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
		req.Header.Set("Content-Type", "application/grpc-web")
		req.Header.Set("Grpc-Timeout", "20m")
		return req
	}
	// The upstream is canceled at the deadline and the client gets
	// DEADLINE_EXCEEDED, before or after the response started.
	rec := httptest.NewRecorder()
	err := Handler{}.ServeHTTP(rec, newReq(), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		<-r.Context().Done()
		return caddyhttp.Error(http.StatusBadGateway, r.Context().Err())
	}))
	if err != nil || rec.Header().Get("Grpc-Status") != "4" {
		t.Errorf("before the response: %v %v", err, rec.Header())
	}
	for name, fail := range map[string]func() error{
		"error": func() error { return errors.New("canceled") },
		"abort": func() error { panic(http.ErrAbortHandler) },
	} {
		rec = httptest.NewRecorder()
		err = Handler{}.ServeHTTP(rec, newReq(), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/grpc")
			w.Write(frame(0, "first"))
			<-r.Context().Done()
			return fail()
		}))
		frames := parseFrames(t, rec.Body.Bytes())
		if err != nil || len(frames) != 2 || !strings.HasPrefix(frames[1].payload, "grpc-status: 4\r\n") {
			t.Errorf("%s after the response started: %v %q", name, err, frames)
		}
	}
}
