package sentinelapp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() { caddy.RegisterModule(testDiscovery{}) }

// discoveries counts the running Discover calls of testDiscovery.
var discoveries atomic.Int64

// testDiscovery publishes Set at once, then again every 100µs until its
// context ends (so that a config that was replaced keeps trying).
type testDiscovery struct {
	Set []string `json:"set,omitempty"`
}

func (testDiscovery) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.test_set", New: func() caddy.Module { return new(testDiscovery) }}
}

func (d *testDiscovery) Discover(ctx context.Context, _ string, publish func([]registry.TargetSpec)) {
	discoveries.Add(1)
	defer discoveries.Add(-1)
	var ts []registry.TargetSpec
	for _, a := range d.Set {
		ts = append(ts, registry.TargetSpec{Address: a})
	}
	t := time.NewTicker(100 * time.Microsecond)
	defer t.Stop()
	for {
		publish(ts)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// TestDiscoveryFollowsReloads: a config's discoverer publishes into the
// registry once the config runs; a reload replaces it (the old one
// stops, and what it publishes while the new config starts is ignored);
// a config without the discovery drops the discovered targets; nothing
// keeps running after the stop.
func TestDiscoveryFollowsReloads(t *testing.T) {
	listen := testutil.FreeAddr(t)
	config := func(set ...string) string {
		cfg := proxyConfig(t, listen, "disc-u", "127.0.0.1:9", nil)
		if set == nil {
			return cfg
		}
		d, _ := json.Marshal(map[string]any{"kind": "test_set", "set": set})
		out := strings.Replace(cfg, `"id":"disc-u"`, `"discovery":`+string(d)+`,"id":"disc-u"`, 1)
		if out == cfg {
			t.Fatalf("no upstream in %s", cfg)
		}
		return out
	}
	reg := processRegistry
	pool := func() string { return strings.Join(reg.Pool("disc-u").Addresses, ",") }
	waitPool := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for pool() != want {
			if time.Now().After(deadline) {
				t.Fatalf("pool %q, want %q", pool(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(config("127.0.0.1:11"), "json")
	waitPool("127.0.0.1:9,127.0.0.1:11")
	if u, _ := reg.Get("disc-u"); u.Targets[1].Origin != registry.OriginDiscovery {
		t.Errorf("targets %+v", u.Targets)
	}
	// A watcher records a pool that goes back to an older config's set.
	var back atomic.Value
	stop := make(chan struct{})
	watched := make(chan struct{})
	var newest atomic.Int64
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := pool()
			var port int64
			if i := strings.LastIndexByte(p, ':'); i >= 0 {
				fmt.Sscan(p[i+1:], &port)
			}
			if port >= 20 && port < newest.Load() {
				back.Store(p)
			}
			newest.Store(max(newest.Load(), port))
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for n := range 5 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20+n)
		tc.InitServer(config(addr), "json")
		waitPool("127.0.0.1:9," + addr)
		// The replaced config's discoverer stopped; it never comes back.
		waitRunning(t, 1)
		time.Sleep(20 * time.Millisecond)
		if got := pool(); got != "127.0.0.1:9,"+addr {
			t.Fatalf("after reload %d: pool %q", n, got)
		}
	}
	close(stop)
	<-watched
	if p := back.Load(); p != nil {
		t.Errorf("a replaced config's discoverer changed the pool: %v", p)
	}
	tc.InitServer(config(), "json")
	waitPool("127.0.0.1:9")
	waitRunning(t, 0)
	tc.InitServer(config("127.0.0.1:30"), "json")
	waitPool("127.0.0.1:9,127.0.0.1:30")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, 0)
}

func waitRunning(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for discoveries.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d discoverers running, want %d", discoveries.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDiscoveryModuleErrors: a module of the namespace that is not a
// registry.Discoverer fails the load with a clear error.
func TestDiscoveryModuleErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{Upstreams: []UpstreamConfig{{ID: "x", Discovery: json.RawMessage(`{"kind":"nope"}`)}}}
	if err := a.Provision(ctx); err == nil || !strings.Contains(err.Error(), `upstream "x": loading its discovery`) {
		t.Errorf("unknown kind: %v", err)
	}
}
