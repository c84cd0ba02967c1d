package wasm

import (
	"encoding/json"
	"fmt"
	"github.com/caddyserver/caddy/v2/caddytest"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHeaderInject(t *testing.T) { checkHeaderInject(t, buildPlugin(t, "headerinject")) }

// checkHeaderInject checks a headerinject plugin (Go or Rust) through the
// proxy.
func checkHeaderInject(t *testing.T, plugin string) {
	tester := startProxy(t, plugins{{
		"id": "inject", "path": plugin,
		"config": map[string]any{
			"request_headers":  map[string]string{"X-Injected": "from-wasm"},
			"response_headers": map[string]string{"X-Plugin": "headerinject", "X-Backend": "overridden"},
		},
	}})
	for i := 0; i < 3; i++ { // reused pooled instance
		resp, body := get(t, tester, "/hello")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err, body)
		}
		if got["injected"] != "from-wasm" || got["path"] != "/hello" {
			t.Errorf("backend saw %v", got)
		}
		if h := resp.Header.Get("X-Plugin"); h != "headerinject" {
			t.Errorf("X-Plugin = %q", h)
		}
		if h := resp.Header.Values("X-Backend"); len(h) != 1 || h[0] != "overridden" {
			t.Errorf("X-Backend = %q", h)
		}
	}
}

func TestPathAllowDecisions(t *testing.T) { checkPathAllow(t, buildPlugin(t, "pathallow")) }

// checkPathAllow checks a pathallow plugin (Go or Rust) through the
// proxy: allow, block with headers, redirect, metrics.
func checkPathAllow(t *testing.T, plugin string) {
	tester := startProxy(t, plugins{{
		"id": "paths", "path": plugin,
		"config": map[string]any{
			"allow":     []string{"/api"},
			"redirects": map[string]string{"/old": "/api/new"},
		},
	}})
	resp, body := get(t, tester, "/api/x")
	if resp.StatusCode != 200 || !strings.Contains(body, `"path":"/api/x"`) {
		t.Errorf("allow: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, tester, "/admin")
	if resp.StatusCode != 403 || body != `{"error":"path not allowed"}` {
		t.Errorf("block: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Blocked-By") != "pathallow" {
		t.Errorf("block headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Backend") != "" {
		t.Error("blocked request reached the backend")
	}
	assertMetrics(t, tester,
		`sentinel_wasm_plugin_decisions_total{decision="allow",plugin="paths"} 1`,
		`sentinel_wasm_plugin_decisions_total{decision="block",plugin="paths"} 1`)
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ = get(t, tester, "/old")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/api/new" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestBodyGuard(t *testing.T) { checkBodyGuard(t, buildPlugin(t, "bodyguard")) }

// checkBodyGuard checks a bodyguard plugin (Go or Rust) through the
// proxy.
func checkBodyGuard(t *testing.T, plugin string) {
	tester := startProxy(t, plugins{{
		"id": "body", "path": plugin,
		"config":         map[string]any{"deny": []string{"DROP TABLE"}},
		"max_body_bytes": 64,
	}})
	post := func(body string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, url("/submit"), strings.NewReader(body))
		return do(t, tester, req)
	}
	resp, body := post("name=x; DROP TABLE users")
	if resp.StatusCode != 400 || body != "request body rejected\n" {
		t.Errorf("deny: %d %q", resp.StatusCode, body)
	}
	clean := "hello " + strings.Repeat("a", 200) // longer than max_body_bytes
	resp, body = post(clean)
	if resp.StatusCode != 200 || !strings.Contains(body, clean) {
		t.Errorf("clean body: %d %q", resp.StatusCode, body)
	}
	// a deny pattern past max_body_bytes is not seen by the plugin
	resp, _ = post(strings.Repeat("a", 100) + "DROP TABLE")
	if resp.StatusCode != 200 {
		t.Errorf("pattern past the limit: %d", resp.StatusCode)
	}
	resp, _ = get(t, tester, "/nobody")
	if resp.StatusCode != 200 {
		t.Errorf("GET without body: %d", resp.StatusCode)
	}
}

func TestLoopTimeout(t *testing.T) {
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			tester := startProxy(t, plugins{{
				"id": "loop", "path": buildPlugin(t, "loop"), "timeout": "20ms", "failure_mode": mode,
			}})
			start := time.Now()
			resp, body := get(t, tester, "/x")
			elapsed := time.Since(start)
			if elapsed > 2*time.Second {
				t.Errorf("answered after %s", elapsed)
			}
			assertMetrics(t, tester, `sentinel_wasm_plugin_timeouts_total{plugin="loop"} 1`,
				`sentinel_wasm_plugin_decisions_total{decision="failure_`+mode+`",plugin="loop"} 1`)
			if mode == "closed" {
				if resp.StatusCode != 503 || !strings.Contains(body, `"reason":"timeout"`) || !strings.Contains(body, `"plugin":"loop"`) {
					t.Errorf("closed: %d %s", resp.StatusCode, body)
				}
			} else if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "yes" {
				t.Errorf("open: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestTrap(t *testing.T) {
	tester := startProxy(t, plugins{{"id": "trap", "path": buildPlugin(t, "trap")}})
	resp, body := get(t, tester, "/trap")
	if resp.StatusCode != 503 || !strings.Contains(body, `"reason":"trap"`) {
		t.Errorf("trap: %d %s", resp.StatusCode, body)
	}
	// the trapped instance was discarded: the next request works
	for i := 0; i < 2; i++ {
		resp, body = get(t, tester, "/ok")
		if resp.StatusCode != 200 {
			t.Errorf("after trap: %d %s", resp.StatusCode, body)
		}
	}
	assertMetrics(t, tester,
		`sentinel_wasm_plugin_traps_total{plugin="trap"} 1`,
		`sentinel_wasm_plugin_timeouts_total{plugin="trap"} 0`,
		`sentinel_wasm_plugin_decisions_total{decision="failure_closed",plugin="trap"} 1`,
		`sentinel_wasm_plugin_decisions_total{decision="allow",plugin="trap"} 2`,
		`sentinel_wasm_plugin_calls_total{phase="request_headers",plugin="trap"} 3`)
}

// TestMemoryLimit: a plugin allocating past its memory limit traps
// (503), and the same plugin with room succeeds. The deadline is far
// above any allocation time: on a loaded machine the 64 MiB allocation
// once took longer than the 2s it had, which turned the expected
// outcome into a timeout.
func TestMemoryLimit(t *testing.T) {
	tester := startProxy(t, plugins{{
		"id": "hog", "path": buildPlugin(t, "memhog"), "max_memory": "16MiB", "timeout": "60s",
	}})
	resp, body := get(t, tester, "/x")
	if resp.StatusCode != 503 || !strings.Contains(body, `"plugin":"hog"`) {
		t.Errorf("memory hog: %d %s", resp.StatusCode, body)
	}
	assertMetrics(t, tester, `sentinel_wasm_plugin_traps_total{plugin="hog"} 1`, `sentinel_wasm_plugin_timeouts_total{plugin="hog"} 0`)

	// the same plugin with room for its allocation succeeds: the limit
	// was the cause
	tester = startProxy(t, plugins{{
		"id": "hog", "path": buildPlugin(t, "memhog"), "max_memory": "256MiB", "timeout": "60s",
	}})
	if resp, body := get(t, tester, "/x"); resp.StatusCode != 200 {
		t.Errorf("memory hog within its limit: %d %s", resp.StatusCode, body)
	}
}

// TestHostBytesBounded: the memory limit bounds the guest's memory, not
// what the host keeps of it. A plugin within its 16 MiB that adds 64
// headers of 64 KiB (4 MiB; in a loop, hundreds of MiB per request
// within its deadline) traps once it has handed the host more than
// 1 MiB, and the request gets the failure mode's answer; a plugin
// within the budget works.
func TestHostBytesBounded(t *testing.T) {
	tester := startProxy(t, plugins{{"id": "flood", "path": buildPlugin(t, "hostflood")}})
	resp, body := get(t, tester, "/flood")
	if resp.StatusCode != 503 || !strings.Contains(body, `"plugin":"flood"`) {
		t.Errorf("a plugin handing the host 4 MiB of headers: %d %.200s", resp.StatusCode, body)
	}
	if resp, body := get(t, tester, "/ok"); resp.StatusCode != 200 {
		t.Errorf("a plugin within the budget: %d %.200s", resp.StatusCode, body)
	}
	assertMetrics(t, tester, `sentinel_wasm_plugin_traps_total{plugin="flood"} 1`)
}

// TestPluginHeaderControlCharacters: a header a plugin sets with a CR or
// LF in its value (or an invalid name) is a plugin failure (503 by the
// failure mode), on the request and on the response: the field would
// otherwise reach whichever writer sends it, where a line break is a new
// header or a new request (smuggling on the upstream connection).
func TestPluginHeaderControlCharacters(t *testing.T) {
	seen := make(chan http.Header, 4)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
	}))
	t.Cleanup(backend.Close)
	for _, c := range []struct{ name, kind, header, value string }{
		{"request value", "request_headers", "X-Injected", "1\r\nX-Smuggled: 1"},
		{"request name", "request_headers", "X-Injected: 1\r\nX-Smuggled", "1"},
		{"response value", "response_headers", "X-Injected", "1\r\nSet-Cookie: s=attacker"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cfg map[string]any
			if err := json.Unmarshal([]byte(fmt.Sprintf(`{%q: {%q: %q}}`, c.kind, c.header, c.value)), &cfg); err != nil {
				t.Fatal(err)
			}
			tester := startConfig(t, proxyConfig(t, backend.Listener.Addr().String(), plugins{{
				"id": "inject", "path": buildPlugin(t, "headerinject"), "abi": "sentinel", "config": cfg,
			}}))
			resp, body := get(t, tester, "/x")
			if resp.StatusCode != 503 || !strings.Contains(body, `"plugin":"inject"`) {
				t.Errorf("%d %.200s, want the failure mode's 503", resp.StatusCode, body)
			}
			if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Injected") != "" {
				t.Errorf("the client got the plugin's header: %v", resp.Header)
			}
			select {
			case h := <-seen:
				if c.kind == "request_headers" {
					t.Errorf("the backend got the request: %v", h)
				}
			default:
			}
		})
	}
}

// TestBlockStatusNotInformational: a block decision with a 1xx status
// (100 sent an interim response then the block's body as a 200; 101
// answered Switching Protocols) is answered 403, as for agents; a final
// status is kept.
func TestBlockStatusNotInformational(t *testing.T) {
	for status, want := range map[int]int{100: 403, 101: 403, 199: 403, 0: 403, 1000: 403, 200: 200, 451: 451} {
		tester := startProxy(t, plugins{{"id": "block", "path": buildPlugin(t, "blockstatus"), "config": map[string]any{"status": status}}})
		resp, body := get(t, tester, "/x")
		if resp.StatusCode != want || body != "blocked" {
			t.Errorf("block with status %d: %d %q, want %d \"blocked\"", status, resp.StatusCode, body, want)
		}
	}
}

func TestHTTPWasm(t *testing.T) {
	tester := startProxy(t, plugins{
		{"id": "hw", "path": buildPlugin(t, "httpwasm")},
		{"id": "inject", "path": buildPlugin(t, "headerinject"), "abi": "sentinel",
			"config": map[string]any{"request_headers": map[string]string{"X-Injected": "1"}}},
	})
	resp, body := get(t, tester, "/x")
	if resp.StatusCode != 200 || resp.Header.Get("X-Http-Wasm") != "yes" || !strings.Contains(body, `"injected":"1"`) {
		t.Errorf("http-wasm: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	assertMetrics(t, tester,
		`sentinel_wasm_plugin_calls_total{phase="request_headers",plugin="hw"} 1`,
		`sentinel_wasm_plugin_decisions_total{decision="allow",plugin="hw"} 1`,
		`sentinel_wasm_plugin_calls_total{phase="request_headers",plugin="inject"} 1`)
}

// TestUpstreamDown checks that a plugin with a response hook leaves the
// error of an unreachable upstream to Caddy (502), and that an implicit
// 200 still runs the hook.
func TestUpstreamDown(t *testing.T) {
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(proxyConfig(t, "127.0.0.1:1", plugins{{
		"id": "inject", "path": buildPlugin(t, "headerinject"),
		"config": map[string]any{"response_headers": map[string]string{"X-Plugin": "1"}},
	}}), "json")
	resp, body := get(t, tester, "/x")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("upstream down: %d %s", resp.StatusCode, body)
	}
}
