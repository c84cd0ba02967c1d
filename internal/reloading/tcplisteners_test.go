//go:build linux

package reloading

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// fakeSentinel stands for the sentinel app: when it checks (Checks), it
// runs CheckListeners while it is provisioned.
type fakeSentinel struct {
	Checks bool `json:"checks,omitempty"`
}

func (fakeSentinel) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: SentinelAppName, New: func() caddy.Module { return new(fakeSentinel) }}
}

func (s *fakeSentinel) Provision(ctx caddy.Context) error {
	if !s.Checks {
		return nil
	}
	if err := CheckListeners(ctx); err != nil {
		return &checkedBy{"sentinel", err}
	}
	return nil
}
func (s *fakeSentinel) ChecksListeners() bool { return s.Checks }
func (*fakeSentinel) Start() error            { return nil }
func (*fakeSentinel) Stop() error             { return nil }

// fakeL4 stands for the sentinel_l4 app: it runs
// CheckListenersUnlessSentinel while it is provisioned.
type fakeL4 struct {
	Servers map[string][]string `json:"servers,omitempty"`
}

func (fakeL4) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: L4AppName, New: func() caddy.Module { return new(fakeL4) }}
}

func (a *fakeL4) Provision(ctx caddy.Context) error {
	if err := CheckListenersUnlessSentinel(ctx); err != nil {
		return &checkedBy{"l4", err}
	}
	return nil
}
func (a *fakeL4) TCPListenAddresses() map[string][]string { return a.Servers }
func (*fakeL4) Start() error                              { return nil }
func (*fakeL4) Stop() error                               { return nil }

// checkedBy is the error of the app that ran the check.
type checkedBy struct {
	app string
	err error
}

func (e *checkedBy) Error() string { return "checked by " + e.app + ": " + e.err.Error() }

func init() {
	caddy.RegisterModule(fakeSentinel{})
	caddy.RegisterModule(fakeL4{})
}

var (
	_ ListenerChecker = (*fakeSentinel)(nil)
	_ TCPListenApp    = (*fakeL4)(nil)
)

// TestCheckListenersOnce: in a config with apps http and sentinel_l4, a
// taken address of either app fails the provisioning (validation: no
// server starts), naming the app, the server and the address; the check
// is run by the sentinel app when it checks, else by the sentinel_l4 app
// (no sentinel app, as in the Gateway API controller's configs, or a
// passive one), whichever app is provisioned first (map order: a few
// runs see both orders).
func TestCheckListenersOnce(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	config := func(sentinel any, httpListen, l4Listen string) *caddy.Config {
		apps := map[string]any{
			"http": map[string]any{"servers": map[string]any{
				"edge": map[string]any{"listen": []string{httpListen}},
			}},
			L4AppName: map[string]any{"servers": map[string]any{
				"free": []string{"127.0.0.1:0"},
				"tcp":  []string{l4Listen},
			}},
		}
		if sentinel != nil {
			apps[SentinelAppName] = sentinel
		}
		raw, _ := json.Marshal(map[string]any{"admin": map[string]any{"disabled": true}, "apps": apps})
		var cfg caddy.Config
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		return &cfg
	}
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name     string
		sentinel any
		by       string
	}{
		{name: "no sentinel app", by: "checked by l4: "},
		{name: "passive sentinel app", sentinel: map[string]any{}, by: "checked by l4: "},
		{name: "checking sentinel app", sentinel: map[string]any{"checks": true}, by: "checked by sentinel: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 6 {
				err := caddy.Validate(config(tc.sentinel, free(), taken.Addr().String()))
				want := tc.by + `sentinel_l4 app: server "tcp": listening on ` + taken.Addr().String()
				if err == nil || !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "checked by") != 1 {
					t.Fatalf("sentinel_l4 address taken: %v, want an error with %q", err, want)
				}
				err = caddy.Validate(config(tc.sentinel, taken.Addr().String(), free()))
				want = tc.by + `http app: server "edge": listening on ` + taken.Addr().String()
				if err == nil || !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "checked by") != 1 {
					t.Fatalf("http address taken: %v, want an error with %q", err, want)
				}
				if err := caddy.Validate(config(tc.sentinel, free(), free())); err != nil {
					t.Fatalf("addresses free: %v", err)
				}
			}
		})
	}
}

// TestCheckTCPListeners: ports of a range are each checked; addresses
// that are not TCP, do not parse or take port 0 are left to Start.
func TestCheckTCPListeners(t *testing.T) {
	base := testutil.FreePorts(t, 2)
	taken, err := net.Listen("tcp", "127.0.0.1:"+itoa(base+1))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = CheckTCPListeners(map[string][]string{"r": {"127.0.0.1:" + itoa(base) + "-" + itoa(base+1)}})
	if err == nil || !strings.Contains(err.Error(), `server "r": listening on 127.0.0.1:`+itoa(base+1)) {
		t.Errorf("a range whose last port is taken: %v", err)
	}
	if err := CheckTCPListeners(map[string][]string{"s": {"udp/" + taken.Addr().String(), "unix//tmp/x.sock", "127.0.0.1:0", "not an address:x"}}); err != nil {
		t.Errorf("addresses left to Start: %v", err)
	}
}
