package sentinelapp

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// withServer adds to the JSON config cfg an http server listening on
// listen that answers body.
func withServer(t *testing.T, cfg, name, listen, body string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(cfg), &m); err != nil {
		t.Fatal(err)
	}
	servers := m["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
	servers[name] = map[string]any{
		"listen":          []string{listen},
		"automatic_https": map[string]any{"disable": true},
		"routes": []any{map[string]any{"handle": []any{map[string]any{
			"handler": "static_response", "status_code": 200, "body": body,
		}}}},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFailedHTTPLoadsNeverTouchTheRunningConfig: while clients send
// requests to the running config A without pause, config B fails to load
// twenty times because a listener it adds cannot bind (another socket
// holds the address). Every request is answered 200 by A. Before B's
// listen addresses were checked at provisioning (reloading.CheckHTTPListeners), B's http app bound its servers
// one by one in Start: when the server on A's address started before the
// one on the taken address, its SO_REUSEPORT socket took some of A's
// connections, answered by B's routes or reset when the load was rolled
// back.
func TestFailedHTTPLoadsNeverTouchTheRunningConfig(t *testing.T) {
	tc, listen, b := runningA(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// B's server on A's address starts before the one on the taken
	// address in about half the loads (Caddy starts them in map order).
	cfgB := withServer(t, proxyConfig(t, listen, "up-b", b, nil), "taken", taken.Addr().String(), "B-taken")

	clients := testutil.NewSteadyClients(t)
	for range 4 {
		clients.Add(func() string { code, body := get(t, "http://"+listen+"/"); return fmt.Sprintf("%d %s", code, body) }, testutil.Equals("200 A"))
	}
	want := "listening on " + taken.Addr().String()
	for i := range 20 {
		if err := caddy.Load(cfgB, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load %d of config B: %v", i, err)
		}
		// Let the clients reach the running config between loads.
		time.Sleep(5 * time.Millisecond)
	}
	clients.Check(t, "20 failed loads", 20)
	if _, ok := processRegistry.Get("up-a"); !ok {
		t.Error("the running config's upstream is gone")
	}
	if processRegistry.Pool("up-b") != nil {
		t.Error("a failed config's upstream is in the registry")
	}
	// A good config adding a new listener loads, and its listener
	// answers.
	extra := testutil.FreeAddr(t)
	tc.InitServer(string(withServer(t, proxyConfig(t, listen, "up-b", b, nil), "extra", extra, "E")), "json")
	if code, body := get(t, "http://"+listen+"/"); code != 200 || body != "B" {
		t.Errorf("config B: %d %s", code, body)
	}
	if code, body := get(t, "http://"+extra+"/"); code != 200 || body != "E" {
		t.Errorf("config B's new listener: %d %s", code, body)
	}
	// The checks kept nothing bound: this process holds no socket on
	// the address once B stops.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckReleased(t, extra)
}
