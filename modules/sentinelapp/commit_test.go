package sentinelapp

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"github.com/sentinel-proxy/sentinel/registry"
)

// proxyConfig is a JSON config: one listener proxying to the registry
// upstream up, and a sentinel app declaring it with target, plus extra
// fields of the app.
func proxyConfig(t *testing.T, listen, up, target string, app map[string]any) string {
	t.Helper()
	if app == nil {
		app = map[string]any{}
	}
	app["upstreams"] = []any{map[string]any{"id": up, "targets": []any{map[string]any{"address": target}}}}
	cfg := map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("localhost:%d", adminPort)},
		"apps": map[string]any{
			"http": map[string]any{"servers": map[string]any{"main": map[string]any{
				"listen":          []string{listen},
				"automatic_https": map[string]any{"disable": true},
				"routes": []any{map[string]any{"handle": []any{map[string]any{
					"handler":           "reverse_proxy",
					"dynamic_upstreams": map[string]any{"source": "sentinel", "upstream": up},
					"transport":         map[string]any{"protocol": "sentinel"},
				}}}},
			}}},
			"sentinel": app,
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func backend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	// A new connection each time: a config reload closes the previous
	// config's idle ones, which a pooled client could pick (EOF).
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, readAll(res))
	return res.StatusCode, b.String()
}

func readAll(res *http.Response) string {
	buf := make([]byte, 1<<16)
	n, _ := res.Body.Read(buf)
	return string(buf[:n])
}

// runningA starts config A (a proxy route on listen to a backend
// answering "A", upstream "up-a") and checks that it answers; it returns
// the tester, listen and the address of a second backend answering "B".
func runningA(t *testing.T) (tc *caddytest.Tester, listen, b string) {
	t.Helper()
	listen = testutil.FreeAddr(t)
	a := backend(t, "A")
	b = backend(t, "B")
	tc = caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(proxyConfig(t, listen, "up-a", a, nil), "json")
	if code, body := get(t, "http://"+listen+"/"); code != 200 || body != "A" {
		t.Fatalf("config A: %d %s", code, body)
	}
	return tc, listen, b
}

// TestFailedLoadKeepsTheRunningConfig is issue 12.8: config B fails to
// start (its API address is taken); Caddy keeps config A, and so must the
// registry: A's upstream stays, B's is not seen, and A's routes answer.
func TestFailedLoadKeepsTheRunningConfig(t *testing.T) {
	tc, listen, b := runningA(t)

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfgB := proxyConfig(t, listen, "up-b", b, map[string]any{
		"api": map[string]any{"listen": taken.Addr().String(), "tokens": []any{map[string]any{"token": "t"}}},
	})
	if err := caddy.Load([]byte(cfgB), true); err == nil || !strings.Contains(err.Error(), "control-plane API") {
		t.Fatalf("config B loaded: %v", err)
	}
	if _, ok := processRegistry.Get("up-a"); !ok {
		t.Error("the running config's upstream is gone")
	}
	if _, ok := processRegistry.Get("up-b"); ok || processRegistry.Pool("up-b") != nil {
		t.Error("the failed config's upstream is in the registry")
	}
	// Right after the failed load, and during many of them, every
	// request is answered by A (see TestFailedLoadsNeverTouchTheRunningConfig).
	for range 5 {
		if code, body := get(t, "http://"+listen+"/"); code != 200 || body != "A" {
			t.Fatalf("config A after the failed load: %d %s", code, body)
		}
	}
	// Validation alone (no start) leaves nothing behind either.
	var cfg caddy.Config
	json.Unmarshal([]byte(proxyConfig(t, testutil.FreeAddr(t), "up-v", b, nil)), &cfg)
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	if processRegistry.Pool("up-v") != nil {
		t.Error("a validated config staged its upstream for good")
	}
	// And a good B is committed.
	tc.InitServer(proxyConfig(t, listen, "up-b", b, nil), "json")
	if code, body := get(t, "http://"+listen+"/"); code != 200 || body != "B" {
		t.Errorf("config B: %d %s", code, body)
	}
	if _, ok := processRegistry.Get("up-a"); ok {
		t.Error("up-a stayed after it left the config")
	}
}

// TestFailedLoadsNeverTouchTheRunningConfig: while clients send requests
// to the running config A without pause, config B fails to load twenty
// times (its API address is taken). Every request is answered 200 by A:
// none is closed, answered 503 or answered by B's routes. Before the
// API listener was claimed at provisioning, B's HTTP server could start
// (Caddy starts the apps in map order) and accept some of A's
// connections on its own SO_REUSEPORT socket before B's API claim
// failed; those were then reset or answered by B's torn-down routes.
func TestFailedLoadsNeverTouchTheRunningConfig(t *testing.T) {
	_, listen, b := runningA(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfgB := []byte(proxyConfig(t, listen, "up-b", b, map[string]any{
		"api": map[string]any{"listen": taken.Addr().String(), "tokens": []any{map[string]any{"token": "t"}}},
	}))

	clients := testutil.NewSteadyClients(t)
	for range 4 {
		clients.Add(func() string { code, body := get(t, "http://"+listen+"/"); return fmt.Sprintf("%d %s", code, body) }, testutil.Equals("200 A"))
	}
	for i := range 20 {
		if err := caddy.Load(cfgB, true); err == nil || !strings.Contains(err.Error(), "control-plane API") {
			t.Errorf("load %d of config B: %v", i, err)
		}
	}
	clients.Check(t, "20 failed loads", 20)
	if _, ok := processRegistry.Get("up-a"); !ok {
		t.Error("the running config's upstream is gone")
	}
	if processRegistry.Pool("up-b") != nil {
		t.Error("a failed config's upstream is in the registry")
	}
}

// TestAPIClaimedAtProvisionOnlyWhenReplacing: with a config running, a
// new config claims its API listener while it is provisioned, so that a
// taken address fails it before any of its apps starts — and validating
// it says so too; with no config running (the `sentinel validate`
// process), provisioning binds nothing, since a proxy running elsewhere
// may hold the address.
func TestAPIClaimedAtProvisionOnlyWhenReplacing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	validate := func() error {
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(proxyConfig(t, testutil.FreeAddr(t), "up-claim", backend(t, "C"), map[string]any{
			"api": map[string]any{"listen": taken.Addr().String(), "tokens": []any{map[string]any{"token": "t"}}},
		})), &cfg); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&cfg)
	}
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(proxyConfig(t, testutil.FreeAddr(t), "up-run", backend(t, "R"), nil), "json")
	if err := validate(); err == nil || !strings.Contains(err.Error(), "control-plane API: listening on "+taken.Addr().String()) {
		t.Errorf("validation beside a running config: %v", err)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := validate(); err != nil {
		t.Errorf("validation with no config running: %v", err)
	}
	if processRegistry.Pool("up-claim") != nil {
		t.Error("a validated config staged its upstream for good")
	}
}

// TestCorruptStateFileDoesNotStopTheStart is issue 12.7 through the app:
// the proxy starts from the config, the bad file is moved aside, the API
// shows why, and the next change writes a good file.
func TestCorruptStateFileDoesNotStopTheStart(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	os.WriteFile(state, []byte(`{"version":1,"upstreams":[{"id":"../x y","origin":"api","override":[]}]}`), 0o600)
	listen, api := testutil.FreeAddr(t), testutil.FreeAddr(t)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(proxyConfig(t, listen, "up-s", backend(t, "S"), map[string]any{
		"state_file": state,
		"api":        map[string]any{"listen": api, "tokens": []any{map[string]any{"token": "tok"}}, "allowed_target_networks": []string{"127.0.0.0/8"}},
	}), "json")
	if code, body := get(t, "http://"+listen+"/"); code != 200 || body != "S" {
		t.Fatalf("proxy: %d %s", code, body)
	}
	code, body := call(t, "GET", "http://"+api+"/api/v1/state", "tok", "")
	var st registry.StoreStatus
	json.Unmarshal([]byte(body), &st)
	if code != 200 || !strings.Contains(st.LoadError, `id "../x y"`) || st.MovedTo == "" {
		t.Fatalf("state: %d %s", code, body)
	}
	if _, err := os.Stat(st.MovedTo); err != nil {
		t.Errorf("moved file: %v", err)
	}
	if code, body := call(t, "POST", "http://"+api+"/api/v1/upstreams/up-s/targets", "tok", `{"address":"127.0.0.1:9"}`); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	data, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(data), "127.0.0.1:9") {
		t.Errorf("state file after a change: %v %s", err, data)
	}
}

// TestExpiredDrainsAreAudited is issue 12.5: the removal of targets whose
// drain timed out is audited.
func TestExpiredDrainsAreAudited(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	a := &App{reg: registry.New(), audit: zap.New(core), logger: zap.NewNop()}
	a.reg.Reconcile([]registry.UpstreamSpec{{ID: "u", Targets: []registry.TargetSpec{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}}, nil)
	if _, err := a.reg.Drain("u", "10.0.0.1:80", time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	a.expire(time.Now().Add(time.Second))
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	m := entries[0].ContextMap()
	if m["upstream"] != "u" || m["target"] != "10.0.0.1:80" || m["auth"] != "drain_timeout" {
		t.Errorf("%v", m)
	}
	if u, _ := a.reg.Get("u"); len(u.Targets) != 1 {
		t.Errorf("targets %v", u.Targets)
	}
}
