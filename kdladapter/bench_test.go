package kdladapter

import (
	"fmt"
	"strings"
	"testing"
)

// generatedConfig builds a config with n routes and n upstreams of three
// targets each, with health checks, policies and a filter on every route.
func generatedConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("system { }\nlisteners {\n    listener \"http\" { address \"127.0.0.1:18080\"; }\n    listener \"ops\" { address \"127.0.0.1:18081\"; }\n}\n")
	b.WriteString("filters {\n    filter \"tag\" {\n        type \"headers\"\n        set { \"X-Sentinel\" \"1\"; }\n    }\n}\n")
	b.WriteString("routes {\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    route \"r%d\" {\n        priority %d\n        matches {\n            path-prefix \"/svc%d\"\n            method \"GET\" \"POST\"\n        }\n        upstream \"u%d\"\n        filters \"tag\"\n        policies {\n            timeout-secs 30\n            request-headers { set { \"X-Route\" \"r%d\"; }; }\n        }\n        retry-policy { max-attempts 2; }\n    }\n", i, i%100, i, i, i)
	}
	b.WriteString("}\nupstreams {\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    upstream \"u%d\" {\n        target \"10.0.%d.1:8080\" weight=2\n        target \"10.0.%d.2:8080\" weight=1\n        target \"10.0.%d.3:8080\"\n        load-balancing \"weighted\"\n        health-check {\n            type \"http\" { path \"/health\"; }\n            interval-secs 5\n        }\n        timeouts { connect-secs 2; request-secs 30; }\n    }\n", i, i%250, i%250, i%250)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// BenchmarkAdapt1000 adapts a generated config of 1,000 routes and 1,000
// upstreams (two listeners).
func BenchmarkAdapt1000(b *testing.B) {
	src := generatedConfig(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Adapt("gen.kdl", src, noEnv, OSFiles{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGeneratedConfigAdapts(t *testing.T) {
	out, _, err := Adapt("gen.kdl", generatedConfig(50), noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	// The two listeners differ only in their address: one server with
	// both addresses, each route once.
	if strings.Count(string(out), `"handler":"reverse_proxy"`) != 50 || !strings.Contains(string(out), `"listen":["127.0.0.1:18080","127.0.0.1:18081"]`) {
		t.Errorf("expected 50 routes in one server listening on both addresses")
	}
}
