package sentinelapp

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sentinel-proxy/sentinel/registry"
)

// testCtx is a Caddy context for loading check modules.
func testCtx(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

// checkUntil runs check rounds until the target's health is want.
func checkUntil(t *testing.T, c *checker, reg *registry.Registry, id, addr string, want bool) {
	t.Helper()
	stop := make(chan struct{})
	defer close(stop)
	for i := 0; i < 20; i++ {
		c.round(stop)
		if reg.Healthy(id, addr) == want {
			return
		}
	}
	t.Fatalf("%s did not become healthy=%v", addr, want)
}

func TestHTTPHealthCheck(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var host atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		if r.URL.Path != "/ready" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "h", Targets: []registry.TargetSpec{{Address: addr}}}}, nil)
	c, err := newChecker(testCtx(t), "h", HealthCheck{Type: "http", Path: "/ready", Host: "svc.internal", ExpectStatus: 200, Healthy: 1, Unhealthy: 2, Timeout: caddy.Duration(time.Second)}, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	status.Store(500)
	checkUntil(t, c, reg, "h", addr, false)
	if len(reg.Pool("h").Addresses) != 0 {
		t.Error("unhealthy target still in the pool")
	}
	status.Store(200)
	checkUntil(t, c, reg, "h", addr, true)
	if host.Load() != "svc.internal" {
		t.Errorf("Host header %v", host.Load())
	}
	// Any 2xx without expect_status.
	c2, _ := newChecker(testCtx(t), "h", HealthCheck{Path: "/ready"}, reg, zap.NewNop())
	status.Store(204)
	if err := c2.checkTarget(context.Background(), addr); err != nil {
		t.Error(err)
	}
	status.Store(302)
	if err := c2.checkTarget(context.Background(), addr); err == nil {
		t.Error("302 counted as healthy")
	}
}

func TestTCPHealthCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "t", Targets: []registry.TargetSpec{{Address: addr}}}}, nil)
	c, err := newChecker(testCtx(t), "t", HealthCheck{Type: "tcp", Unhealthy: 1, Healthy: 1, Timeout: caddy.Duration(time.Second)}, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkTarget(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	checkUntil(t, c, reg, "t", addr, false)
}

func TestGRPCHealthCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	addr := ln.Addr().String()
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "g", Targets: []registry.TargetSpec{{Address: addr}}}}, nil)
	c, err := newChecker(testCtx(t), "g", HealthCheck{Type: "grpc", Service: "pkg.Svc", Healthy: 1, Unhealthy: 1, Timeout: caddy.Duration(2 * time.Second)}, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	hs.SetServingStatus("pkg.Svc", healthpb.HealthCheckResponse_NOT_SERVING)
	checkUntil(t, c, reg, "g", addr, false)
	hs.SetServingStatus("pkg.Svc", healthpb.HealthCheckResponse_SERVING)
	checkUntil(t, c, reg, "g", addr, true)
	hs.SetServingStatus("pkg.Svc", healthpb.HealthCheckResponse_NOT_SERVING)
	checkUntil(t, c, reg, "g", addr, false)
}

func TestHealthCheckConfig(t *testing.T) {
	for _, bad := range []HealthCheck{{Type: "icmp"}, {Type: "http", Path: "health"}} {
		if _, err := newChecker(testCtx(t), "x", bad, registry.New(), zap.NewNop()); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	c, err := newChecker(testCtx(t), "x", HealthCheck{}, registry.New(), zap.NewNop())
	if hc, ok := c.check.(*HTTPCheck); err != nil || !ok || hc.Path != "/health" || c.hc.Healthy != 2 || c.hc.Unhealthy != 3 || time.Duration(c.hc.Interval) != 10*time.Second {
		t.Errorf("defaults: %+v %v", c.hc, err)
	}
	// run stops when told, and a round on an unknown upstream is a no-op.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { c.run(stop); close(done) }()
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("checker did not stop")
	}
}

// TestTLSHealthCheck: checks of a TLS upstream speak TLS.
func TestTLSHealthCheck(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "s", Targets: []registry.TargetSpec{{Address: addr}}}}, nil)
	c, err := newChecker(testCtx(t), "s", HealthCheck{TLS: &HealthTLS{InsecureSkipVerify: true}}, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkTarget(context.Background(), addr); err != nil {
		t.Fatalf("TLS check: %v", err)
	}
	plain, _ := newChecker(testCtx(t), "s", HealthCheck{}, reg, zap.NewNop())
	if err := plain.checkTarget(context.Background(), addr); err == nil {
		t.Error("plaintext check of a TLS server passed")
	}
	if _, err := newChecker(testCtx(t), "s", HealthCheck{TLS: &HealthTLS{CAFile: "/nonexistent.pem"}}, reg, zap.NewNop()); err == nil {
		t.Error("missing CA file accepted")
	}
}

// TestHealthCheckModules: the check is a module of sentinel.health_checks
// given in `check` (the flat fields are the shorthand of the built-in
// ones); both at once, or an unknown module, are refused.
func TestHealthCheckModules(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live" {
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for raw, want := range map[string]string{
		`{"type":"http","path":"/live"}`: "",
		`{"type":"http","path":"/nope"}`: "status 404",
		`{"type":"tcp"}`:                 "",
	} {
		c, err := newChecker(testCtx(t), "m", HealthCheck{CheckRaw: json.RawMessage(raw)}, registry.New(), zap.NewNop())
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		err = c.checkTarget(context.Background(), addr)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
	for hc, want := range map[*HealthCheck]string{
		{CheckRaw: json.RawMessage(`{"type":"tcp"}`), Path: "/x"}: "not both",
		{CheckRaw: json.RawMessage(`{"type":"icmp"}`)}:            "sentinel.health_checks.icmp",
		{CheckRaw: json.RawMessage(`{"type":"http","path":"x"}`)}: `path "x" must start with /`,
		{Type: "icmp"}: `unknown type "icmp"`,
	} {
		if _, err := newChecker(testCtx(t), "m", *hc, registry.New(), zap.NewNop()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", hc, err, want)
		}
	}
	if _, err := caddy.GetModule("sentinel.health_checks.grpc"); err != nil {
		t.Error(err)
	}
}

// TestSharedBuiltinChecks: upstreams whose built-in checks have the same
// settings share one provisioned check (one HTTP client, not one per
// upstream); other settings, and checks given as a module, get their own;
// a built-in check that fails to provision fails as the same check given
// as a module does.
func TestSharedBuiltinChecks(t *testing.T) {
	ctx := testCtx(t)
	shared := map[builtinKey]Checker{}
	load := func(hc HealthCheck) Checker {
		t.Helper()
		c, err := newSharedChecker(ctx, "u", hc, registry.New(), zap.NewNop(), shared)
		if err != nil {
			t.Fatal(err)
		}
		return c.check
	}
	tlsA, tlsB := &HealthTLS{ServerName: "a"}, &HealthTLS{ServerName: "a"}
	a, b := load(HealthCheck{Path: "/h"}), load(HealthCheck{Type: "http", Path: "/h"})
	if a != b {
		t.Error("two upstreams with the same http check have one each")
	}
	if c := load(HealthCheck{Path: "/h", TLS: tlsA}); c == a || c != load(HealthCheck{Path: "/h", TLS: tlsB}) {
		t.Error("checks with TLS: shared with a plain one, or not with an equal one")
	}
	for _, hc := range []HealthCheck{{Path: "/other"}, {Path: "/h", Host: "x"}, {Path: "/h", ExpectStatus: 204}, {Type: "tcp"}, {Type: "grpc"}} {
		if load(hc) == a {
			t.Errorf("%+v shares the check of another setting", hc)
		}
	}
	if load(HealthCheck{Type: "grpc", Service: "s"}) == load(HealthCheck{Type: "grpc"}) {
		t.Error("grpc checks of two services share one check")
	}
	if load(HealthCheck{CheckRaw: json.RawMessage(`{"type":"http","path":"/h"}`)}) == a {
		t.Error("a check given as a module was shared")
	}
	_, got := newSharedChecker(ctx, "u", HealthCheck{Path: "x"}, registry.New(), zap.NewNop(), shared)
	_, want := newChecker(ctx, "u", HealthCheck{CheckRaw: json.RawMessage(`{"type":"http","path":"x"}`)}, registry.New(), zap.NewNop())
	if got == nil || want == nil || got.Error() != want.Error() {
		t.Errorf("a bad built-in check: %v, want %v", got, want)
	}
}
