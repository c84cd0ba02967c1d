package wasm

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestResponseHeadersBlockDropsUpstreamHeaders: a block decided in
// on_response_headers replaces the upstream's response through the real
// proxy; none of the upstream's headers go out with it (a plugin hiding
// upstream errors must not leak the session cookie or debug headers, and
// the upstream's Content-Encoding would make the block body unreadable).
func TestResponseHeadersBlockDropsUpstreamHeaders(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Set-Cookie", "session=upstream-secret")
		h.Set("X-Debug-Trace", "at db.go:42 password=hunter2")
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "\x1f\x8b not really gzip")
	}))
	t.Cleanup(backend.Close)
	tester := startConfig(t, proxyConfig(t, backend.Listener.Addr().String(), plugins{
		{"id": "rg", "path": buildPlugin(t, "respguard"), "failure_mode": "closed"},
	}))
	req, err := http.NewRequest(http.MethodGet, url("/x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	res, body := do(t, tester, req)
	if res.StatusCode != http.StatusBadGateway || body != "upstream error hidden\n" {
		t.Fatalf("block: %d %q", res.StatusCode, body)
	}
	for _, name := range []string{"Set-Cookie", "X-Debug-Trace", "Content-Encoding"} {
		if v := res.Header.Get(name); v != "" {
			t.Errorf("the block carries the upstream's %s: %q", name, v)
		}
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q, want the block's text/plain", ct)
	}
}
