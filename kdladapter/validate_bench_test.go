package kdladapter_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/sentinel-proxy/sentinel/kdladapter"
	_ "github.com/sentinel-proxy/sentinel"
)

// BenchmarkValidate adapts and provisions (caddy.Validate, what `sentinel
// validate` and the API's validate do) generated configs of n routes and
// n upstreams. Issue 13.8: 10,000 routes took 17 s (route flags were
// copied per new route).
func BenchmarkValidate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		src := kdladapter.GeneratedConfig(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, _, err := kdladapter.Adapt("gen.kdl", src, func(string) (string, bool) { return "", false }, kdladapter.OSFiles{})
				if err != nil {
					b.Fatal(err)
				}
				var cfg caddy.Config
				if err := json.Unmarshal(out, &cfg); err != nil {
					b.Fatal(err)
				}
				if err := caddy.Validate(&cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
