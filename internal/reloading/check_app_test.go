//go:build linux

package reloading

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"
)

// checkApp is an app that checks its config's http listeners while it is
// provisioned, as the sentinel app does when it replaces a running
// config.
type checkApp struct{}

func (checkApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "reloading_test_check", New: func() caddy.Module { return new(checkApp) }}
}

func (*checkApp) Provision(ctx caddy.Context) error { return CheckHTTPListeners(ctx) }
func (*checkApp) Start() error                      { return nil }
func (*checkApp) Stop() error                       { return nil }

func init() { caddy.RegisterModule(checkApp{}) }

// TestCheckHTTPListenersOfAConfig: provisioning a config (validation: no
// server starts) whose http app listens on a taken address fails at the
// check, naming the server and the address, whether the http app was
// provisioned before the checking app or by it; with the address free it
// passes and binds nothing.
func TestCheckHTTPListenersOfAConfig(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	config := func(listen string) *caddy.Config {
		raw, _ := json.Marshal(map[string]any{
			"admin": map[string]any{"disabled": true},
			"apps": map[string]any{
				"reloading_test_check": map[string]any{},
				"http": map[string]any{"servers": map[string]any{
					"free": map[string]any{"listen": []string{"127.0.0.1:0"}},
					"edge": map[string]any{"listen": []string{listen}},
				}},
			},
		})
		var cfg caddy.Config
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		return &cfg
	}
	// Apps are provisioned in map order: run it a few times to see both
	// orders.
	for range 8 {
		err := caddy.Validate(config(taken.Addr().String()))
		if err == nil || !strings.Contains(err.Error(), `server "edge": listening on `+taken.Addr().String()) {
			t.Fatalf("validation with a taken address: %v", err)
		}
	}
	free := taken.Addr().String()
	taken.Close()
	if err := caddy.Validate(config(free)); err != nil {
		t.Fatalf("validation with the address free: %v", err)
	}
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("the check left the address bound: %v", err)
	}
	ln.Close()
}
