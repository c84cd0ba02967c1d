package wasm

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestRustExamples: the Rust SDK's example plugins, built with cargo for
// wasm32-wasi, behave like the Go ones through the real proxy (issue 23).
func TestRustExamples(t *testing.T) {
	t.Run("headerinject", func(t *testing.T) { checkHeaderInject(t, buildRustPlugin(t, "headerinject")) })
	t.Run("pathallow", func(t *testing.T) { checkPathAllow(t, buildRustPlugin(t, "pathallow")) })
	t.Run("bodyguard", func(t *testing.T) { checkBodyGuard(t, buildRustPlugin(t, "bodyguard")) })
}

// TestRustConfigErrors: a Rust plugin refusing its config fails the load
// with the reason (the SDK's fail: stderr, exit 1, in _initialize).
func TestRustConfigErrors(t *testing.T) {
	pathallow, headerinject := buildRustPlugin(t, "pathallow"), buildRustPlugin(t, "headerinject")
	for _, tc := range []struct {
		name, path string
		config     any
		want       string
	}{
		{"one value for a list", pathallow, map[string]any{"allow": "/api"}, `pathallow: config key "allow": a list is expected, got a single string; in KDL write allow (list)"…"`},
		{"allow missing", pathallow, map[string]any{}, `pathallow: config key "allow" is missing`},
		{"unknown key", pathallow, map[string]any{"allow": []string{"/a"}, "alow": 1}, `pathallow: config key "alow" is unknown (known: allow, redirects)`},
		{"wrong type", headerinject, map[string]any{"request_headers": []string{"x"}}, `headerinject: config key "request_headers": an object of strings is expected, got a list`},
		{"not an object", headerinject, []string{"x"}, `config: an object is expected, got a list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{"id": "p", "path": tc.path, "config": tc.config}}}))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "p": instantiating`) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRustResponseBody: on_response_body (revision 1.2) sees the
// upstream's body and can replace the response, through the proxy; a
// response it allows is unchanged, and one longer than max_body_bytes is
// judged on its first bytes and then streamed whole.
func TestRustResponseBody(t *testing.T) {
	tester := startProxy(t, plugins{{
		"id": "body", "path": buildRustPlugin(t, "bodyguard"),
		"config":         map[string]any{"deny_response": []string{"secret-token"}},
		"max_body_bytes": 4096,
	}})
	post := func(body string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, url("/echo"), strings.NewReader(body))
		return do(t, tester, req)
	}
	resp, body := post("hello")
	if resp.StatusCode != 200 || !strings.Contains(body, `"body":"hello"`) || resp.Header.Get("X-Backend") != "yes" {
		t.Errorf("allowed: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	// the backend echoes the body: the response contains the pattern
	resp, body = post("my secret-token here")
	if resp.StatusCode != 502 || body != "response withheld\n" || resp.Header.Get("X-Backend") != "" {
		t.Errorf("withheld: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	// past the limit: the pattern is beyond what the hook sees, the whole
	// response goes out
	long := strings.Repeat("a", 5000) + "secret-token"
	resp, body = post(long)
	if resp.StatusCode != 200 || !strings.Contains(body, long) {
		t.Errorf("past the limit: %d %d bytes", resp.StatusCode, len(body))
	}
	assertMetrics(t, tester,
		`sentinel_wasm_plugin_calls_total{phase="response_body",plugin="body"} 3`,
		`sentinel_wasm_plugin_decisions_total{decision="block",plugin="body"} 1`)
}

// TestRequestFacts: get_query, get_client_addr, get_client_ip and
// get_route_id (revision 1.2) through the proxy, with the Rust SDK.
func TestRequestFacts(t *testing.T) {
	backend := newBackend(t)
	cfg := proxyConfig(t, backend.Listener.Addr().String(), plugins{{"id": "info", "path": buildRustPlugin(t, "requestinfo")}})
	cfg = strings.Replace(cfg, `{"handler": "sentinel_wasm",`, `{"handler": "sentinel_wasm", "route": "api-v1",`, 1)
	tester := startConfig(t, cfg)
	resp, _ := get(t, tester, "/x?a=1&b=%20")
	for k, want := range map[string]string{
		"X-Sentinel-Route": "api-v1", "X-Sentinel-Client-Ip": "127.0.0.1", "X-Sentinel-Query": "a=1&b=%20", "X-Sentinel-Tls": "none",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if a := resp.Header.Get("X-Sentinel-Client-Addr"); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("client addr %q", a)
	}
	// without a route id in the handler (on a new connection: a kept-alive
	// one may still be served by the previous config's server)
	tester.Client.CloseIdleConnections()
	tester = startProxy(t, plugins{{"id": "info", "path": buildRustPlugin(t, "requestinfo")}})
	tester.Client.CloseIdleConnections()
	if resp, _ := get(t, tester, "/x"); resp.Header.Get("X-Sentinel-Route") != "-" || resp.Header.Get("X-Sentinel-Query") != "" {
		t.Errorf("no route: %v", resp.Header)
	}
}

// TestRustSDKUnitTests runs the Rust crates' own tests (the JSON config
// reader, decisions, the getters' retry) on the host with the same
// toolchain, so that CI runs them.
func TestRustSDKUnitTests(t *testing.T) {
	cargo, rustc, missing := rustToolchain()
	if missing != "" {
		testutil.Missing(t, "%s", missing)
	}
	cmd := exec.Command(cargo, "test", "--offline", "--quiet")
	cmd.Dir = rustWorkspace
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+filepath.Join(os.TempDir(), "sentinel-rust-plugins-target"), "RUSTC="+rustc,
		"PATH="+filepath.Dir(rustc)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cargo test: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "test result: ok. 5 passed") {
		t.Errorf("the SDK's tests did not run:\n%s", out)
	}
}
