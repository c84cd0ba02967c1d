package builtin

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestGRPCErrors: a gRPC call's error is a trailers-only gRPC answer, not
// a JSON body; a call whose grpc-timeout passed gets DEADLINE_EXCEEDED
// (the upstream's reset at its deadline used to reach the client as an
// HTTP 502 it reported as UNAVAILABLE).
func TestGRPCErrors(t *testing.T) {
	b := &Builtin{Kind: "error"}
	b.respond = b.handlerError
	call := func(ct, timeout string, code int, age time.Duration) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/pkg.Svc/Call", nil)
		r.Header.Set("Content-Type", ct)
		if timeout != "" {
			r.Header.Set("Grpc-Timeout", timeout)
		}
		repl := caddy.NewReplacer()
		repl.Set("http.error.status_code", code)
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{"start_time": time.Now().Add(-age)})
		w := httptest.NewRecorder()
		if err := b.ServeHTTP(w, r.WithContext(ctx), nil); err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, c := range []struct {
		ct, timeout string
		code        int
		age         time.Duration
		status      string
		msg         string
	}{
		{"application/grpc", "", 502, 0, "14", "the upstream did not answer"},
		{"application/grpc+proto", "", 404, 0, "12", "Not Found"},
		{"application/grpc", "300m", 502, 400 * time.Millisecond, "4", "deadline exceeded"},
		{"application/grpc", "300m", 502, 10 * time.Millisecond, "14", "the upstream did not answer"},
		{"application/grpc", "bogus", 503, time.Hour, "14", "no upstream target is available"},
	} {
		w := call(c.ct, c.timeout, c.code, c.age)
		if w.Code != 200 || w.Header().Get("Grpc-Status") != c.status || w.Header().Get("Grpc-Message") != c.msg || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "application/grpc" {
			t.Errorf("%+v: %d %v %q", c, w.Code, w.Header(), w.Body)
		}
	}
	// gRPC-Web and plain requests keep the JSON body.
	for _, ct := range []string{"application/grpc-web+proto", "application/json", ""} {
		if w := call(ct, "", 502, 0); w.Code != 502 || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%q: %d %v", ct, w.Code, w.Header())
		}
	}
}
