package caddyfile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sentinel-proxy/sentinel"
)

var update = flag.Bool("update", false, "rewrite the golden JSON files")

// TestGoldenCaddyfiles adapts testdata/*.caddyfile with Caddy's Caddyfile
// adapter and compares with the .json beside it: the Sentinel directives
// are registered, ordered among Caddy's (handlers run in the documented
// order whatever the file order) and produce the modules' JSON.
func TestGoldenCaddyfiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no golden Caddyfiles")
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warns, err := adapter.Adapt(src, map[string]any{"filename": f})
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) > 0 {
				t.Errorf("warnings: %v", warns)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, out, "", "  ")
			pretty.WriteString("\n")
			golden := strings.TrimSuffix(f, ".caddyfile") + ".json"
			if *update {
				os.WriteFile(golden, pretty.Bytes(), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs:\n%s", golden, pretty.String())
			}
		})
	}
}

// TestDirectiveOrder checks the handler order among the adapted routes:
// CORS answers preflights before rename, timeout and the proxy run;
// sentinel_builtin, like Caddy's respond, comes before reverse_proxy.
func TestDirectiveOrder(t *testing.T) {
	src, _ := os.ReadFile("testdata/all-directives.caddyfile")
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	order := []string{`"handler":"sentinel_cors"`, `"handler":"header_rename"`, `"handler":"sentinel_timeout"`, `"handler":"sentinel_builtin"`, `"handler":"reverse_proxy"`}
	last := -1
	for _, h := range order {
		i := strings.Index(s, h)
		if i < 0 || i < last {
			t.Fatalf("%s missing or out of order in %s", h, s)
		}
		last = i
	}
}
