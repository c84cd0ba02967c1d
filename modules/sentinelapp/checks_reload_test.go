package sentinelapp

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestHealthChecksDoNotOverlapAcrossReload: the checkers of a new config
// start only once those of the config it replaces have stopped (Caddy
// starts the new config before it stops the old one). Config n checks
// path /c<n>; the backend never sees a check of an older config once one
// of a newer config arrived. (A check cut short by its config's Stop may
// still be in the backend's handler; what matters is that none starts.)
func TestHealthChecksDoNotOverlapAcrossReload(t *testing.T) {
	var (
		mu       sync.Mutex
		seen     = map[int]int{}
		newest   = -1
		overlaps []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/c"))
		if err != nil {
			return
		}
		mu.Lock()
		if n < newest {
			overlaps = append(overlaps, fmt.Sprintf("config %d checked after config %d", n, newest))
		}
		newest = max(newest, n)
		seen[n]++
		mu.Unlock()
	}))
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "http://")
	listen := testutil.FreeAddr(t)
	config := func(n int) string {
		cfg := proxyConfig(t, listen, "hc-reload", target, nil)
		check := fmt.Sprintf(`"health_check":{"type":"http","path":"/c%d","interval":"2ms","timeout":"1s"},"id":"hc-reload"`, n)
		out := strings.Replace(cfg, `"id":"hc-reload"`, check, 1)
		if out == cfg {
			t.Fatalf("no upstream in %s", cfg)
		}
		return out
	}
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	for n := range 4 {
		tc.InitServer(config(n), "json")
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			k := seen[n]
			mu.Unlock()
			if k >= 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("config %d: %d checks in 5 s", n, k)
			}
			time.Sleep(time.Millisecond)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("%d overlaps, e.g. %s", len(overlaps), overlaps[0])
	}
}

// TestNewChecksWaitForTheOldConfigsStop replays a reload's order on two
// apps of the same registry: the new app starts while the old one runs;
// its checkers stay idle until the old app's Stop returned, then check.
func TestNewChecksWaitForTheOldConfigsStop(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
	}))
	defer srv.Close()
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[path]
	}
	reg := registry.New()
	target := strings.TrimPrefix(srv.URL, "http://")
	reg.Reconcile([]registry.UpstreamSpec{{ID: "turn", Targets: []registry.TargetSpec{{Address: target}}}}, nil)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := func(path string) *App {
		c, err := newChecker(ctx, "turn", HealthCheck{Type: "http", Path: path, Interval: caddy.Duration(2 * time.Millisecond), Timeout: caddy.Duration(time.Second)}, reg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		return &App{Upstreams: []UpstreamConfig{{ID: "turn"}}, reg: reg, run: &running{}, checks: []*checker{c}, logger: zap.NewNop()}
	}
	older, newer := app("/old"), app("/new")
	if err := older.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count("/old") >= 3 })
	if err := newer.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // 25 intervals
	if n := count("/new"); n > 0 {
		t.Fatalf("the new app checked %d times while the old one ran", n)
	}
	if err := older.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count("/new") >= 3 })
	if err := newer.Stop(); err != nil {
		t.Fatal(err)
	}
	// A config stopped before its turn never checks, and gives the turn
	// back to none: the next one checks at once.
	idle, next := app("/idle"), app("/next")
	blocker := app("/blocker")
	if err := blocker.Start(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := blocker.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count("/next") >= 1 })
	if err := next.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := count("/idle"); n != 0 {
		t.Errorf("an app stopped before its turn checked %d times", n)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
