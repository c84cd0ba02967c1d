package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
)

// shadowConfig is a route "api" to upstream "primary" with the given
// shadow block, and upstreams "primary" and "canary".
func shadowConfig(block string) string {
	return minimal + `routes {
    route "api" {
        upstream "primary"
        shadow {
` + block + `
        }
    }
}
upstreams {
    upstream "primary" { target "127.0.0.1:9001"; }
    upstream "canary" { target "127.0.0.1:9002"; timeouts { connect-secs 2; }; }
}
`
}

// shadowOf returns the sentinel_shadow handler of route "api" in out.
func shadowOf(t *testing.T, out []byte) map[string]any {
	t.Helper()
	for _, routes := range serverRoutes[map[string]any](t, out) {
		for _, hs := range routes {
			for i, h := range hs {
				if h["handler"] == "sentinel_shadow" {
					if next := hs[i+1]; next["handler"] != "reverse_proxy" {
						t.Errorf("the handler after sentinel_shadow is %v, want the route's reverse_proxy", next["handler"])
					}
					return h
				}
			}
		}
	}
	t.Fatalf("no sentinel_shadow handler in\n%s", out)
	return nil
}

func TestShadowMapping(t *testing.T) {
	out, warns := mustAdapt(t, shadowConfig(`
            upstream "canary"
            percentage 12.5
            sample-header "X-Canary" "yes"
            timeout-ms 750
            buffer-body #true
            max-body-bytes "64KB"
            max-in-flight 7`))
	if len(warns) > 0 {
		t.Errorf("warnings (the canary upstream is used by the shadow): %s", warningsText(warns))
	}
	h := shadowOf(t, out)
	want := map[string]any{
		"upstream": "canary", "route": "api", "percentage": 12.5, "timeout": "750ms",
		"buffer_body": true, "max_body_bytes": float64(65536), "max_in_flight": float64(7),
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %v, want %v", k, h[k], v)
		}
	}
	if sh, _ := h["sample_header"].(map[string]any); sh["name"] != "X-Canary" || sh["value"] != "yes" {
		t.Errorf("sample_header = %v", h["sample_header"])
	}
	// The copies go through the canary's own proxy settings.
	proxy, _ := json.Marshal(h["proxy"])
	for _, s := range []string{`"handler":"reverse_proxy"`, `"dynamic_upstreams":{"source":"sentinel","upstream":"canary"}`, `"dial_timeout":"2s"`, `"protocol":"sentinel"`, `"Host":["{http.reverse_proxy.upstream.hostport}"]`} {
		if !strings.Contains(string(proxy), s) {
			t.Errorf("proxy lacks %s: %s", s, proxy)
		}
	}
}

func TestShadowDefaults(t *testing.T) {
	out, _ := mustAdapt(t, shadowConfig(`upstream "canary"`))
	h := shadowOf(t, out)
	for _, k := range []string{"percentage", "timeout", "buffer_body", "max_body_bytes", "max_in_flight", "sample_header"} {
		if v, ok := h[k]; ok {
			t.Errorf("%s = %v, want it left to the handler's default", k, v)
		}
	}
}

func TestShadowBadInput(t *testing.T) {
	cases := []struct{ name, block, want string }{
		{"unknown upstream", `upstream "canery"`, `test.kdl:12:10: route "api": shadow upstream "canery" is not defined in upstreams { } (did you mean "canary"?)`},
		{"no upstream", `percentage 5`, `test.kdl:11:9: route "api": shadow needs upstream`},
		{"percentage above 100", "upstream \"canary\"\npercentage 150", `test.kdl:13:12: percentage must be between 0 and 100, not 150`},
		{"negative percentage", "upstream \"canary\"\npercentage -1", `test.kdl:13:12: percentage must be between 0 and 100, not -1`},
		{"percentage not a number", "upstream \"canary\"\npercentage \"ten\"", `test.kdl:13:12: percentage takes a number, not string "ten"`},
		{"sample-header without value", "upstream \"canary\"\nsample-header \"X-Canary\"", `test.kdl:13:1: sample-header takes a header name and a value`},
		{"sample-header empty name", "upstream \"canary\"\nsample-header \"\" \"1\"", `test.kdl:13:15: sample-header: the header name is empty`},
		{"zero timeout", "upstream \"canary\"\ntimeout-ms 0", `test.kdl:13:12: timeout-ms must be between 1 and`},
		{"zero max-body-bytes", "upstream \"canary\"\nmax-body-bytes 0", `test.kdl:13:16: max-body-bytes must be at least 1 byte`},
		{"bad max-in-flight", "upstream \"canary\"\nmax-in-flight 0", `test.kdl:13:15: max-in-flight must be between 1 and`},
		{"unknown key", "upstream \"canary\"\nprecentage 5", `test.kdl:13:1: unknown setting "precentage" in routes.route.shadow (did you mean "percentage"?)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := adaptString(t, shadowConfig(c.block))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v\nwant it to contain %s", err, c.want)
			}
		})
	}
}

func TestShadowWithoutUpstreamRouteWarns(t *testing.T) {
	out, warns := mustAdapt(t, minimal+`routes {
    route "s" {
        builtin-handler "status"
        shadow { upstream "canary"; }
    }
}
upstreams { upstream "canary" { target "127.0.0.1:9002"; } }
`)
	if !strings.Contains(warningsText(warns), `route "s": shadow applies only to routes with an upstream; it is ignored`) {
		t.Errorf("warnings: %s", warningsText(warns))
	}
	if strings.Contains(string(out), "sentinel_shadow") {
		t.Errorf("a route without upstream got a shadow handler")
	}
}
