package wasm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// withLogFile adds a default log writing JSON at debug level to a file
// of the test's temp dir, and returns the config and the file's path.
func withLogFile(t *testing.T, cfg string) (string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "caddy.log")
	logging := `"logging": {"logs": {"default": {"level": "DEBUG", "encoder": {"format": "json"}, "writer": {"output": "file", "filename": ` + mustJSON(t, file) + `}}}},`
	return strings.Replace(cfg, `"apps":`, logging+`"apps":`, 1), file
}

// logEntries returns the entries of the log file with the message msg.
func logEntries(t *testing.T, file, msg string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// TestHTTPWasmLogs: an http-wasm guest's log calls reach Sentinel's log
// at the guest's level, with the plugin's id, and its stdout and stderr
// are logged (issue 23: the log example's "hello world" was lost).
func TestHTTPWasmLogs(t *testing.T) {
	backend := newBackend(t)
	cfg, file := withLogFile(t, proxyConfig(t, backend.Listener.Addr().String(), plugins{{"id": "hw", "path": buildPlugin(t, "hwguest")}}))
	tester := startConfig(t, cfg)
	if resp, body := get(t, tester, "/log"); resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "yes" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for msg, level := range map[string]string{"hello world": "info", "a debug line": "debug", "a warn line": "warn", "to stdout": "info", "to stderr": "warn"} {
		var es []map[string]any
		for deadline := time.Now().Add(2 * time.Second); len(es) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			es = logEntries(t, file, msg)
		}
		if len(es) != 1 {
			t.Errorf("%q logged %d times", msg, len(es))
			continue
		}
		if e := es[0]; e["level"] != level || e["plugin"] != "hw" || e["source"] != "plugin" || e["logger"] != "http.handlers.sentinel_wasm" {
			t.Errorf("%q: %v", msg, e)
		}
	}
}

// TestHTTPWasmFailures: an http-wasm guest that traps or loops, in
// handle_request or handle_response, gets the failure mode's answer
// (closed: 503 from the error route; open: the request goes on as if
// the plugin were not there), counted like a Sentinel-ABI plugin's; the
// failed guest is replaced, so the next request works. Before, a trap in
// handle_response closed the connection without a response, and one in
// handle_request answered 500 with the error's text.
func TestHTTPWasmFailures(t *testing.T) {
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			tester := startProxy(t, plugins{{"id": "hw", "path": buildPlugin(t, "hwguest"), "failure_mode": mode, "timeout": "200ms"}})
			for _, tc := range []struct{ path, reason string }{
				{"/trap-request", "trap"}, {"/trap-response", "trap"}, {"/loop", "timeout"}, {"/loop-response", "timeout"},
			} {
				resp, body := get(t, tester, tc.path)
				if mode == "closed" {
					if resp.StatusCode != 503 || !strings.Contains(body, `"reason":"`+tc.reason+`"`) || !strings.Contains(body, `"plugin":"hw"`) || resp.Header.Get("X-Backend") != "" {
						t.Errorf("%s: %d %v %s", tc.path, resp.StatusCode, resp.Header, body)
					}
				} else if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "yes" || !strings.Contains(body, `"path":"`+tc.path+`"`) {
					t.Errorf("%s: %d %s", tc.path, resp.StatusCode, body)
				}
				if strings.Contains(body, "wasm error") || strings.Contains(body, "exit_code") {
					t.Errorf("%s: the guest's error reached the client: %s", tc.path, body)
				}
				// the failed guest was replaced
				if resp, body := get(t, tester, "/ok"); resp.StatusCode != 200 {
					t.Errorf("after %s: %d %s", tc.path, resp.StatusCode, body)
				}
			}
			if resp, body := get(t, tester, "/answer"); resp.StatusCode != 418 || body != "teapot" {
				t.Errorf("guest answer: %d %q", resp.StatusCode, body)
			}
			assertMetrics(t, tester,
				`sentinel_wasm_plugin_traps_total{plugin="hw"} 2`,
				`sentinel_wasm_plugin_timeouts_total{plugin="hw"} 2`,
				`sentinel_wasm_plugin_decisions_total{decision="failure_`+mode+`",plugin="hw"} 4`,
				`sentinel_wasm_plugin_decisions_total{decision="allow",plugin="hw"} 4`,
				`sentinel_wasm_plugin_decisions_total{decision="block",plugin="hw"} 1`,
				`sentinel_wasm_plugin_calls_total{phase="request_headers",plugin="hw"} 9`,
				`sentinel_wasm_plugin_calls_total{phase="response_headers",plugin="hw"} 6`)
		})
	}
}

// TestHTTPWasmHeldLimit: an http-wasm plugin's response is held only up
// to max_body_bytes: a longer one streams (through ReadFrom too), and a
// failure of handle_response after it went out leaves it whole and is
// counted as failure_open, even with failure_mode closed.
func TestHTTPWasmHeldLimit(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{
		"id": "held", "path": buildPlugin(t, "hwguest"), "max_body_bytes": 4, "timeout": "5s"}}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/ok", "/trap-response"} {
		rec, err := serve(t, h, httptest.NewRequest(http.MethodGet, path, nil), 201, nil)
		if err != nil || rec.Code != 201 || rec.Body.String() != "upstream body" {
			t.Errorf("%s: %v %d %q", path, err, rec.Code, rec.Body.String())
		}
	}
	p := h.Plugins[0]
	if n := testutil.ToFloat64(p.decisions[decisionFailureOpen]); n != 1 {
		t.Errorf("failure_open = %v", n)
	}
	if n := testutil.ToFloat64(p.traps); n != 1 {
		t.Errorf("traps = %v", n)
	}
}

// TestHTTPWasmInterimAnswer: an http-wasm guest answering a request
// itself with an informational status got it through: 101 answered
// Switching Protocols, 100 an interim response and then the body as a
// 200. Such an answer is a 403 now, as a Sentinel-ABI plugin's or an
// agent's block with such a status.
func TestHTTPWasmInterimAnswer(t *testing.T) {
	tester := startProxy(t, plugins{{"id": "hw", "path": buildPlugin(t, "hwguest")}})
	for _, path := range []string{"/interim", "/interim100"} {
		if resp, body := get(t, tester, path); resp.StatusCode != 403 || body != "interim" {
			t.Errorf("%s: %d %q, want 403", path, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, tester, "/answer"); resp.StatusCode != 418 || body != "teapot" {
		t.Errorf("guest answer: %d %q", resp.StatusCode, body)
	}
}
