package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// staticConfig is a JSON config whose listener answers body to every
// request, with the extra apps.
func staticConfig(t *testing.T, listen, body string, apps map[string]any) []byte {
	t.Helper()
	all := map[string]any{
		"http": map[string]any{"servers": map[string]any{"main": map[string]any{
			"listen":          []string{listen},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler": "static_response", "status_code": 200, "body": body,
			}}}},
		}}},
	}
	for k, v := range apps {
		all[k] = v
	}
	b, err := json.Marshal(map[string]any{"admin": map[string]any{"listen": fmt.Sprintf("localhost:%d", adminPort)}, "apps": all})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFailedAgentLoadsNeverTouchTheRunningConfig: a new config whose
// agent registration listener cannot listen (its address is taken) fails
// while it is provisioned, before its http app starts and takes a share
// of the listener's connections: the running config answers every
// request during 20 failed loads (the agents app claims its listener in
// Provision when it replaces a running config, see reloading.Replacing).
func TestFailedAgentLoadsNeverTouchTheRunningConfig(t *testing.T) {
	listen := testutil.FreeAddr(t)
	tc := tester(t)
	tc.InitServer(string(staticConfig(t, listen, "A", nil)), "json")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cert, key := writeCert(t, t.TempDir(), "localhost")
	cfgB := staticConfig(t, listen, "B", map[string]any{
		"sentinel_agents": map[string]any{"registration": map[string]any{
			"address": taken.Addr().String(),
			"tls":     map[string]any{"cert_file": cert, "key_file": key},
			"tokens":  []string{"t"},
		}},
	})
	answer := func() string { return testutil.HTTPAnswer("http://" + listen + "/") }
	if got := answer(); got != "200 A" {
		t.Fatalf("config A: %s", got)
	}
	clients := testutil.NewSteadyClients(t)
	for range 4 {
		clients.Add(answer, testutil.Equals("200 A"))
	}
	for i := range 20 {
		if err := caddy.Load(cfgB, true); err == nil || !strings.Contains(err.Error(), "agent registration listener") {
			t.Errorf("load %d of config B: %v", i, err)
		}
	}
	clients.Check(t, "20 failed loads", 20)
	// The running config still answers; a config that frees the address
	// loads (the failed claims left nothing behind).
	if got := answer(); got != "200 A" {
		t.Errorf("after the failed loads: %s", got)
	}
	taken.Close()
	if err := caddy.Load(cfgB, true); err != nil {
		t.Fatalf("config B once the address is free: %v", err)
	}
	if got := answer(); got != "200 B" {
		t.Errorf("config B: %s", got)
	}
}
