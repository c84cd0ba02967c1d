package kdladapter

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// kdlBlock finds the ```kdl examples of a Markdown page.
var kdlBlock = regexp.MustCompile("(?s)```kdl\n(.*?)```")

// TestDocsExamples adapts every KDL example of the README and docs/: a
// complete config as it is, a fragment (no listeners) inside a minimal
// config with a route per upstream it defines. A user who copies an
// example gets no error and no warning about an unknown key.
func TestDocsExamples(t *testing.T) {
	pages, _ := filepath.Glob("../docs/*.md")
	pages = append(pages, "../README.md")
	n := 0
	for _, page := range pages {
		src, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range kdlBlock.FindAllStringSubmatch(string(src), -1) {
			n++
			block := m[1]
			cfg := wrapExample(block)
			_, warns, err := Adapt(filepath.Base(page)+"-example.kdl", []byte(cfg), envOf("ADMIN_API_TOKEN", "a", "GRAFANA_TOKEN", "g", "DEPLOY_TOKEN", "d", "TEAM_A_TOKEN", "ta", "TEAM_B_TOKEN", "tb"), OSFiles{})
			if err != nil {
				t.Errorf("%s, example %d: %v\n%s", page, i+1, err, block)
				continue
			}
			for _, w := range warns {
				if strings.Contains(w.Message, "unknown") {
					t.Errorf("%s, example %d: %s", page, i+1, w.Message)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("found %d KDL examples", n)
	}
}

// wrapExample turns a documentation example into a whole config: a node
// shown alone (a listener, an upstream, a health check) goes into its
// block; a config without listeners gets a minimal one; every upstream a
// route names but the example does not define gets a loopback target, and
// every upstream it defines a route.
func wrapExample(block string) string {
	first := strings.TrimSpace(block)
	switch {
	case strings.HasPrefix(first, "listener "):
		block = "listeners {\n" + block + "}\n"
	case strings.HasPrefix(first, "upstream "):
		block = "upstreams {\n" + block + "}\n"
	case strings.HasPrefix(first, "health-check"):
		block = "upstreams { upstream \"hc\" {\ntarget \"127.0.0.1:1\"\n" + block + "} }\n"
	}
	cfg := block
	if !strings.Contains(block, "system") {
		cfg = "system { }\n" + cfg
	}
	if !strings.Contains(block, "listeners") {
		cfg += "listeners { listener \"l\" { address \"127.0.0.1:18080\"; } }\n"
	}
	defined := map[string]bool{}
	for _, u := range regexp.MustCompile(`upstream "([^"]+)"\s*\{`).FindAllStringSubmatch(block, -1) {
		defined[u[1]] = true
	}
	var missing []string
	for _, u := range regexp.MustCompile(`upstream "([^"]+)"\s*(?:$|[;/\n])`).FindAllStringSubmatch(block, -1) {
		// "ns:id" names a namespace's upstream (docs/multi-tenancy.md).
		if !defined[u[1]] && !strings.Contains(u[1], ":") {
			defined[u[1]] = true
			missing = append(missing, u[1])
		}
	}
	if len(missing) > 0 {
		cfg += "upstreams {\n"
		for _, u := range missing {
			cfg += "upstream \"" + u + "\" { target \"127.0.0.1:1\"; }\n"
		}
		cfg += "}\n"
	}
	if !strings.Contains(block, "routes") {
		cfg += "routes {\n"
		for u := range defined {
			cfg += "route \"r-" + u + "\" { matches { path-prefix \"/" + u + "\"; }; upstream \"" + u + "\"; }\n"
		}
		cfg += "}\n"
	}
	return cfg
}
