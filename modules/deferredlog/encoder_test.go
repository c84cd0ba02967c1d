package deferredlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// counted is an object field that counts how often it is encoded.
type counted struct{ n *int }

func (c counted) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	*c.n++
	enc.AddString("method", "GET")
	return enc.AddArray("list", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		a.AppendInt(1)
		return nil
	}))
}

// provisioned returns a provisioned encoder from its JSON config.
func provisioned(t testing.TB, cfg string) *Encoder {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	e := new(Encoder)
	if err := json.Unmarshal([]byte(cfg), e); err != nil {
		t.Fatal(err)
	}
	if err := e.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.ConfigureDefaultFormat(caddy.DiscardWriter{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// logWith writes the same entries through a logger with enc, and returns
// the output.
func logWith(enc zapcore.Encoder, n *int) string {
	var out bytes.Buffer
	l := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&out), zapcore.InfoLevel))
	ts := time.Date(2026, 12, 3, 1, 2, 3, 0, time.UTC)
	l = l.WithOptions(zap.WithClock(fixedClock(ts)))
	r := l.With(zap.String("upstream", "10.0.0.1:80"), zap.Duration("duration", time.Millisecond), zap.Object("request", counted{n}),
		zap.Bool("b", true), zap.Int64("i", -3), zap.Uint8("u", 7), zap.Float64("f", 1.5), zap.Time("t", ts),
		zap.Binary("bin", []byte{1, 2}), zap.ByteString("bs", []byte("x")), zap.Reflect("r", map[string]int{"a": 1}),
		zap.Complex128("c", 1+2i), zap.Uintptr("p", 9), zap.Int8("i8", 1), zap.Int16("i16", 2), zap.Int32("i32", 3),
		zap.Int("int", 4), zap.Uint("ui", 5), zap.Uint16("u16", 6), zap.Uint32("u32", 7), zap.Uint64("u64", 8),
		zap.Float32("f32", 2.5), zap.Complex64("c64", 3+4i), zap.Strings("a", []string{"x"}))
	r.Debug("not written")
	r.Error("upstream error", zap.Error(errors.New("boom")))
	nested := r.With(zap.Namespace("ns"), zap.String("inner", "v"))
	nested.Warn("nested")
	l.Info("no context")
	return out.String()
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time                         { return time.Time(c) }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// TestSameOutput: the entries written are those of the wrapped encoder,
// byte for byte, and the context fields are encoded only for the entries
// written (the debug entry is not).
func TestSameOutput(t *testing.T) {
	e := provisioned(t, `{}`)
	var direct, deferred int
	want := logWith(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), &direct)
	got := logWith(e, &deferred)
	if got != want {
		t.Fatalf("output\n%s\nwant\n%s", got, want)
	}
	if direct != 1 || deferred != 2 {
		t.Fatalf("the request object was encoded %d times by the json encoder (want 1, at With) and %d times deferred (want 2, once per entry written)", direct, deferred)
	}
	wrapped := provisioned(t, `{"wrap": {"format": "console"}}`)
	var n int
	if out := logWith(wrapped, &n); !bytes.Contains([]byte(out), []byte("\tupstream error\t")) {
		t.Fatalf("console output %q", out)
	}
}

// TestWithAllocs: a request-scoped logger like the reverse proxy's costs
// a few allocations and encodes nothing until an entry is written.
func TestWithAllocs(t *testing.T) {
	withAllocs := func(enc zapcore.Encoder, n *int) float64 {
		l := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&bytes.Buffer{}), zapcore.InfoLevel))
		obj := zap.Object("request", counted{n})
		return testing.AllocsPerRun(100, func() {
			r := l.With(zap.String("upstream", "a:1"), zap.Duration("duration", time.Second), obj)
			if c := r.Check(zapcore.DebugLevel, "upstream roundtrip"); c != nil {
				c.Write()
			}
		})
	}
	var direct, deferred int
	plain := withAllocs(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), &direct)
	got := withAllocs(provisioned(t, `{}`), &deferred)
	t.Logf("allocations of With: json encoder %.1f, deferred %.1f", plain, got)
	if got > 4 || deferred != 0 {
		t.Fatalf("%.1f allocations (want ≤ 4: the fields, logger, core, encoder), %d encodings (want 0)", got, deferred)
	}
}

// TestCaddyfile reads the wrapped encoder.
func TestCaddyfile(t *testing.T) {
	var e Encoder
	if err := e.UnmarshalCaddyfile(caddyfile.NewTestDispenser("sentinel_deferred {\n wrap console\n}")); err != nil {
		t.Fatal(err)
	}
	if string(e.WrappedRaw) != `{"format":"console"}` {
		t.Fatalf("wrap = %s", e.WrappedRaw)
	}
	for _, bad := range []string{"sentinel_deferred json", "sentinel_deferred {\n level x\n}", "sentinel_deferred {\n wrap\n}", "sentinel_deferred {\n wrap nosuch\n}"} {
		var e Encoder
		if err := e.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// BenchmarkProxyLogger: the request-scoped logger Caddy's reverse proxy
// builds on every attempt (With the upstream, the duration and the
// request), with nothing written, on zap's JSON encoder and on
// sentinel_deferred.
//
//	go test ./modules/deferredlog -run '^$' -bench ProxyLogger -benchmem
func BenchmarkProxyLogger(b *testing.B) {
	req := httptest.NewRequest("GET", "http://example.com/api/v1/items?id=42", nil)
	req.RemoteAddr = "10.1.2.3:45678"
	req.Header.Set("User-Agent", "bench/1.0")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.Header.Set("X-Real-Ip", "10.1.2.3")
	for _, tc := range []struct {
		name string
		enc  zapcore.Encoder
	}{
		{"json", zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())},
		{"deferred", provisioned(b, `{}`)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := zap.New(zapcore.NewCore(tc.enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))
			b.ReportAllocs()
			for b.Loop() {
				r := l.With(zap.String("upstream", "10.0.0.1:80"), zap.Duration("duration", time.Millisecond),
					zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: req}))
				if c := r.Check(zapcore.DebugLevel, "upstream roundtrip"); c != nil {
					c.Write()
				}
			}
		})
	}
}

// TestCaddyfileLog: a Caddyfile's `log` block selects the encoder with
// `format`, as Caddy's own encoders.
func TestCaddyfileLog(t *testing.T) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("{\n log {\n  format sentinel_deferred {\n   wrap json\n  }\n }\n}\n:8080 {\n respond ok\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"encoder":{"format":"sentinel_deferred","wrap":{"format":"json"}}`)) {
		t.Fatalf("adapted: %s", out)
	}
}

// TestCloneBytes: a clone of the encoder, allocated for every
// request-scoped logger of the reverse proxy, holds the proxy's three
// fields and nothing of the module's configuration: one 240-byte block
// (it was 448 with the configuration in it).
func TestCloneBytes(t *testing.T) {
	e := provisioned(t, `{}`)
	var ms0, ms1 runtime.MemStats
	const n = 1000
	clones := make([]zapcore.Encoder, n)
	runtime.ReadMemStats(&ms0)
	for i := range clones {
		c := e.Clone()
		c.AddString("upstream", "10.0.0.1:80")
		c.AddDuration("duration", time.Millisecond)
		c.AddObject("request", counted{new(int)})
		clones[i] = c
	}
	runtime.ReadMemStats(&ms1)
	// The counted value is one allocation of 8 bytes per clone.
	perClone := float64(ms1.TotalAlloc-ms0.TotalAlloc)/n - 8
	if perClone > 240 {
		t.Fatalf("%.0f bytes per clone with three fields, want ≤ 240", perClone)
	}
	if got := unsafe.Sizeof(lazy{}); got > 240 {
		t.Fatalf("a clone is %d bytes, want ≤ 240", got)
	}
}
