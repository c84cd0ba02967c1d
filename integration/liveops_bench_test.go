package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// BenchmarkTargetChange compares one target change (add, then remove) made
// through the control-plane API with the same change made by PATCHing
// Caddy's /config (a full reload), for configs of 10, 100 and 1,000 routes.
//
//	go test ./integration -run '^$' -bench TargetChange -benchtime 20x
func BenchmarkTargetChange(b *testing.B) {
	for _, routes := range []int{10, 100, 1000} {
		listen, apiAddr := testutil.FreeAddr(b), testutil.FreeAddr(b)
		var kdl strings.Builder
		fmt.Fprintf(&kdl, "system { }\nlisteners { listener \"main\" { address %q; }; }\nroutes {\n", listen)
		for i := 0; i < routes; i++ {
			fmt.Fprintf(&kdl, "    route \"r%d\" { matches { path-prefix \"/r%d\"; }; upstream \"u%d\"; }\n", i, i, i%10)
		}
		kdl.WriteString("}\nupstreams {\n")
		for i := 0; i < 10; i++ {
			fmt.Fprintf(&kdl, "    upstream \"u%d\" { target \"127.0.0.1:%d\"; }\n", i, 20000+i)
		}
		fmt.Fprintf(&kdl, "}\nadmin-api { address %q; auth { token \"tok\"; }; allowed-target-networks \"127.0.0.0/8\"; }\n", apiAddr)
		loadKDL(b, kdl.String())

		do := func(method, url, body string) {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer tok")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode/100 != 2 {
				b.Fatalf("%s %s: %d", method, url, res.StatusCode)
			}
		}
		b.Run(fmt.Sprintf("api/routes=%d", routes), func(b *testing.B) {
			for b.Loop() {
				do("POST", "http://"+apiAddr+"/api/v1/upstreams/u0/targets", `{"address":"127.0.0.1:30000"}`)
				do("DELETE", "http://"+apiAddr+"/api/v1/upstreams/u0/targets/127.0.0.1:30000", "")
			}
		})
		admin := fmt.Sprintf("http://localhost:%d/config/apps/sentinel/upstreams/0/targets", adminPort)
		b.Run(fmt.Sprintf("config-patch/routes=%d", routes), func(b *testing.B) {
			for b.Loop() {
				do("PATCH", admin, `[{"address":"127.0.0.1:20000"},{"address":"127.0.0.1:30000"}]`)
				do("PATCH", admin, `[{"address":"127.0.0.1:20000"}]`)
			}
		})
	}
}
