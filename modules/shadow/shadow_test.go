package shadow

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/metrics"
)

func pct(f float64) *float64 { return &f }

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		h    Handler
		want string
	}{
		{"no upstream", Handler{}, "upstream is required"},
		{"percentage above 100", Handler{Upstream: "u", percent: 101}, "percentage must be between 0 and 100"},
		{"negative percentage", Handler{Upstream: "u", percent: -1}, "percentage must be between 0 and 100"},
		{"NaN percentage", Handler{Upstream: "u", percent: math.NaN()}, "percentage must be between 0 and 100"},
		{"sample header without name", Handler{Upstream: "u", SampleHeader: &SampleHeader{Value: "x"}}, "sample_header needs a name"},
		{"negative timeout", Handler{Upstream: "u", Timeout: -1}, "timeout must be positive"},
		{"negative body limit", Handler{Upstream: "u", MaxBodyBytes: -1}, "max_body_bytes must be positive"},
		{"negative in flight", Handler{Upstream: "u", MaxInFlight: -1}, "max_in_flight must be positive"},
		{"valid", Handler{Upstream: "u", percent: 100}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.h.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestSampled(t *testing.T) {
	get := httptest.NewRequest(http.MethodGet, "/", nil)
	never := &Handler{percent: 0}
	always := &Handler{percent: 100}
	for range 1000 {
		if never.sampled(get) {
			t.Fatal("percentage 0 sampled a request")
		}
		if !always.sampled(get) {
			t.Fatal("percentage 100 skipped a request")
		}
	}
	ws := httptest.NewRequest(http.MethodGet, "/", nil)
	ws.Header.Set("Upgrade", "websocket")
	if always.sampled(ws) {
		t.Error("an upgrade was sampled")
	}
	if always.sampled(httptest.NewRequest(http.MethodConnect, "/", nil)) {
		t.Error("a CONNECT was sampled")
	}
	hdr := &Handler{percent: 100, SampleHeader: &SampleHeader{Name: "x-canary", Value: "1"}}
	with := httptest.NewRequest(http.MethodGet, "/", nil)
	with.Header.Set("X-Canary", "1")
	if !hdr.sampled(with) || hdr.sampled(get) {
		t.Error("sample header not applied")
	}
}

// errReader fails after its bytes.
type errReader struct{ n int }

func (e *errReader) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, errors.New("client went away")
	}
	k := min(e.n, len(p))
	e.n -= k
	return k, nil
}

// TestCopyBodyReadError checks that a body that fails while read for the
// copy is not copied, and that the primary gets the bytes read and then
// the error.
func TestCopyBodyReadError(t *testing.T) {
	h := &Handler{BufferBody: true, MaxBodyBytes: 1 << 20}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body, r.ContentLength = io.NopCloser(&errReader{n: 10}), -1
	body, primary, reason := h.copyBody(r)
	if body != nil || reason != metrics.ShadowBodyError {
		t.Fatalf("body %q, reason %q", body, reason)
	}
	got, err := io.ReadAll(primary.Body)
	if len(got) != 10 || err == nil {
		t.Errorf("primary read %d bytes, error %v; want 10 and the error", len(got), err)
	}
}

func TestDiscard(t *testing.T) {
	d := new(discard)
	d.Header().Set("A", "b")
	d.WriteHeader(http.StatusContinue) // informational: not the status
	if n, err := d.Write([]byte("xyz")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	d.WriteHeader(http.StatusTeapot)
	d.Flush()
	if d.status != http.StatusOK || d.Header().Get("A") != "b" {
		t.Errorf("status %d", d.status)
	}
}

func TestProvisionDefaults(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	h := &Handler{Upstream: "u", Percentage: pct(0), ProxyRaw: []byte(`{"handler":"no_such_handler"}`)}
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `sentinel_shadow "u": loading the proxy`) {
		t.Errorf("error %v, want it to name the shadow and the proxy", err)
	}
	if h.Timeout != caddy.Duration(DefaultTimeout) || h.MaxBodyBytes != DefaultMaxBodyBytes || h.MaxInFlight != DefaultMaxInFlight || h.percent != 0 {
		t.Errorf("defaults: %+v", h)
	}
	if h.Cleanup() != nil {
		t.Error("cleanup failed")
	}
	if (&Handler{}).Cleanup() != nil {
		t.Error("cleanup of an unprovisioned handler failed")
	}
}

// TestNoCopyAfterCleanup: a request the old server still serves after a
// reload starts no copy (and does not reuse the wait group Cleanup waits
// on).
func TestNoCopyAfterCleanup(t *testing.T) {
	m, err := metrics.NewShadow(nil, "r", "u")
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Upstream: "u", percent: 100, Timeout: caddy.Duration(DefaultTimeout), inFlight: new(flight), slots: make(chan struct{}, 1), metrics: m}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if got := h.shadow(r); got != r {
		t.Error("the request was changed")
	}
	if len(h.slots) != 0 {
		t.Error("the slot was not released")
	}
}
