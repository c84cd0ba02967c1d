package kdladapter_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel/kdladapter"
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

// BenchmarkAdaptLarge adapts generated configs of 10,000 and 100,000
// routes and upstreams (issue 13.8: 100,000 took 20.5 s and 822 MB; the
// target is < 3 s and < 400 MB).
func BenchmarkAdaptLarge(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		src := kdladapter.GeneratedConfig(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := kdladapter.AdaptUnbounded("gen.kdl", src, func(string) (string, bool) { return "", false }, kdladapter.OSFiles{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
