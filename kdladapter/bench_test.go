package kdladapter

import (
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/bigconfig"
)

// generatedConfig builds a config with n routes and n upstreams of three
// targets each, with health checks, policies and a filter on every route
// (bigconfig.Config).
func generatedConfig(n int) []byte { return bigconfig.Config(n, bigconfig.Options{}) }

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
