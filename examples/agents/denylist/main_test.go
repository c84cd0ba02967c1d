package main

import (
	"context"
	"encoding/json"
	"strings"
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

// TestDenylistPaths: the path rules judge the normalised path the proxy
// sends in uri, and ambiguous encodings in raw_uri are refused with 400
// unless allowed (issue 13.2).
func TestDenylistPaths(t *testing.T) {
	d, err := New(Rules{PathPrefixes: []string{"/api/secret"}})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(uri, raw string) *protocol.RequestHeaders {
		return &protocol.RequestHeaders{URI: uri, RawURI: raw, Metadata: protocol.RequestMetadata{ClientIP: "192.0.2.1"}}
	}
	for _, tc := range []struct {
		uri, raw string
		status   int
		why      string
	}{
		{"/api/secret", "/api/%73ecret", 403, "path:/api/secret"},
		{"/api/secret", "/api//secret", 403, "path:/api/secret"},
		{"/api/secret?x=1", "/api/x/../secret?x=1", 403, "path:/api/secret"},
		{"/api/secret", "/api/%2e/secret", 400, "ambiguous-encoding:%2e"},
		{"/api/secret", "/api/%2E%2E/api/secret", 400, "ambiguous-encoding:%2e"},
		{"/api/a%2Fb", "/api/a%2Fb", 400, "ambiguous-encoding:%2f"},
		{"/api/%2573ecret", "/api/%2573ecret", 400, "ambiguous-encoding:%25"},
		{"/api/x%5C", "/api/x%5c", 400, "ambiguous-encoding:%5c"},
		{"/api/secret%20x", "", 403, "path:/api/secret"}, // no raw_uri: uri is judged
		{"/api/public", "/api/public?q=%2e", 0, ""},      // the query is not the path
		{"/api/public", "/api/%70ublic", 0, ""},
	} {
		r := d.OnRequestHeaders(context.Background(), ev(tc.uri, tc.raw))
		switch {
		case tc.status == 0 && r != nil:
			t.Errorf("%s (%s): blocked %+v", tc.uri, tc.raw, r.Decision)
		case tc.status != 0 && (r == nil || r.Decision.Status != tc.status || r.Decision.Headers["X-Denied-Reason"] != tc.why):
			t.Errorf("%s (%s): %+v, want %d %s", tc.uri, tc.raw, r, tc.status, tc.why)
		}
	}
	// allow_ambiguous_encodings turns the refusal off
	if err := d.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`{"allow_ambiguous_encodings":true}`)}); err != nil {
		t.Fatal(err)
	}
	if r := d.OnRequestHeaders(context.Background(), ev("/api/a%2Fb", "/api/a%2Fb")); r != nil {
		t.Errorf("allowed ambiguous encoding blocked: %+v", r.Decision)
	}
}

// TestDenylistConfigOneValue: a single string where a list is expected
// (KDL `path_prefixes "/admin"`) is refused with a hint, not ignored
// (issue 13.7).
func TestDenylistConfigOneValue(t *testing.T) {
	d, err := New(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	err = d.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`{"path_prefixes":"/admin"}`)})
	if err == nil || !strings.Contains(err.Error(), `denylist: config key "path_prefixes": a list is expected, got a single string`) || !strings.Contains(err.Error(), `path_prefixes (list)"…"`) {
		t.Fatalf("error %v", err)
	}
	if err := d.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`{"pathprefixes":["/admin"]}`)}); err == nil {
		t.Fatal("unknown key accepted")
	}
}
