package wasm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// benchCases are the plugin chains compared by the benchmarks.
func benchCases(b *testing.B) []struct {
	name string
	ps   plugins
} {
	return []struct {
		name string
		ps   plugins
	}{
		{"none", nil},
		{"sentinel-trivial", plugins{{"id": "trivial", "path": buildPlugin(b, "trivial")}}},
		{"http-wasm-trivial", plugins{{"id": "hw", "path": buildPlugin(b, "httpwasm")}}},
	}
}

// BenchmarkProxy measures a request proxied by a real Caddy server to an
// httptest backend, without a plugin and with a trivial plugin of each
// ABI; the difference is the cost a plugin adds per request.
func BenchmarkProxy(b *testing.B) {
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			tester := startProxy(b, bc.ps)
			req, _ := http.NewRequest(http.MethodGet, url("/bench"), nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := tester.Client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkHandler measures the handler alone in front of a next handler
// that writes 200, isolating the per-request cost of a plugin; it also
// reports the linear memory of one pooled instance.
func BenchmarkHandler(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(200)
		return nil
	})
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/bench", nil)
			w := &discardWriter{h: make(http.Header)}
			if bc.ps == nil {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					_ = next.ServeHTTP(w, req)
				}
				return
			}
			h, err := provisionHandler(b, mustJSON(b, map[string]any{"plugins": bc.ps}))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				if err := h.ServeHTTP(w, req, next); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if pool := h.Plugins[0].pool; pool != nil {
				inst, err := pool.get(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(inst.mod.Memory().Size()), "bytes/instance")
				pool.put(inst)
			}
		})
	}
}
