package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDenylist(t *testing.T) {
	c := agenttest.Start(t, run, protocol.Options{Config: json.RawMessage(`{"ips":["2001:db8::/32"],"path_prefixes":["/private"],"headers":{"X-Evil":"yes"},"body":"go away"}`)},
		"-ip", "203.0.113.0/24,198.51.100.7", "-path", "/admin", "-header", "User-Agent=BadBot")
	ctx := agenttest.Ctx(t, 10*time.Second)
	for _, tc := range []struct {
		ip, uri string
		h       map[string][]string
		why     string
	}{
		{"203.0.113.9:51234", "/", nil, "ip:203.0.113.0/24"},
		{"198.51.100.7", "/", nil, "ip:198.51.100.7/32"},
		{"[2001:db8::1]:443", "/", nil, "ip:2001:db8::/32"},
		{"192.0.2.1:1", "/admin/users", nil, "path:/admin"},
		{"192.0.2.1:1", "/private", nil, "path:/private"},
		{"192.0.2.1:1", "/", map[string][]string{"user-agent": {"curl", "Mozilla BADBOT 1.0"}}, "header:user-agent"},
		{"192.0.2.1:1", "/", map[string][]string{"x-evil": {"YES"}}, "header:x-evil"},
		{"192.0.2.1:1", "/public", map[string][]string{"user-agent": {"curl"}}, ""},
		{"not-an-ip", "/adm", nil, ""},
	} {
		r, err := c.Call(ctx, agenttest.Headers("d-"+tc.ip+tc.uri, tc.ip, tc.uri, tc.h))
		if err != nil {
			t.Fatal(err)
		}
		if tc.why == "" {
			if r.Decision.Kind != protocol.Allow {
				t.Errorf("%s %s: blocked %+v", tc.ip, tc.uri, r.Decision)
			}
			continue
		}
		d := r.Decision
		if d.Kind != protocol.Block || d.Status != 403 || d.Body != "go away" || d.Headers["X-Denied-Reason"] != tc.why || d.Headers["X-Denied-By"] != "denylist" {
			t.Errorf("%s %s: %+v, want block %s", tc.ip, tc.uri, d, tc.why)
		}
	}
}

func TestDenylistErrors(t *testing.T) {
	for _, args := range [][]string{{"-ip", "nope", "-uds", "/tmp/x"}, {"-ip", "1.2.3.0/99", "-uds", "/tmp/x"}, {"-header", "novalue", "-uds", "/tmp/x"}, {"-x"}} {
		if err := run(context.Background(), args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	d, err := New(Rules{Status: 451})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`{"ips":1}`)}); err == nil {
		t.Fatal("bad config accepted")
	}
	if err := d.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`{"status":429,"ips":["10.0.0.1"]}`)}); err != nil {
		t.Fatal(err)
	}
	r := d.OnRequestHeaders(context.Background(), &protocol.RequestHeaders{Metadata: protocol.RequestMetadata{ClientIP: "10.0.0.1"}})
	if r == nil || r.Decision.Status != 429 {
		t.Fatalf("%+v", r)
	}
	if err := d.OnConfigure(context.Background(), &protocol.Configure{}); err != nil {
		t.Fatal(err)
	}
}
