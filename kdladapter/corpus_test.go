package kdladapter

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// corpusExpect is what adapting one file of the original's corpus gives:
// nothing (it adapts), or exactly these not-yet features. other lists
// expected errors that are the file's own fault (documented in the
// corpus README), matched as substrings.
type corpusExpect struct {
	notYet []string
	other  []string
}

var corpus = map[string]corpusExpect{
	"default-config.kdl":         {},
	"default-config.cc90d2a.kdl": {},
	"sentinel.kdl":               {notYet: []string{"WAF (runs as an agent)"}},
	"zentinel.kdl":               {notYet: []string{"WAF (runs as an agent)"}},
	"docker/default.kdl":         {},
	"docker/proxy.kdl":           {},
	// The folder's routes/api.kdl is a stale January 2026 file that names
	// upstreams and filters defined nowhere (see the corpus README).
	"example-multi-file/zentinel.kdl": {other: []string{
		`upstream "api-backend-v1" is not defined`, `upstream "websocket-backend" is not defined`, `upstream "admin-backend" is not defined`,
		`filter "rate-limiter" is not defined`, `filter "cors-handler" is not defined`, `filter "auth-jwt" is not defined`,
		`filter "waf" is not defined`, `filter "auth-mtls" is not defined`, `filter "audit-logger" is not defined`, `filter "auth-basic" is not defined`}},
	"examples/acme-cloudflare.kdl":                 {notYet: []string{"dns-01 challenges (DNS provider modules)"}},
	"examples/acme-p384.kdl":                       {notYet: []string{"dns-01 challenges (DNS provider modules)"}},
	"examples/acme-san.kdl":                        {},
	"examples/acme-zerossl.kdl":                    {},
	"examples/ai-guardrails.kdl":                   {notYet: []string{"inference routing"}},
	"examples/api-gateway.kdl":                     {},
	"examples/api-schema-validation.kdl":           {notYet: []string{"API schema validation"}},
	"examples/basic.kdl":                           {},
	"examples/cors-headers.kdl":                    {},
	"examples/distributed-rate-limit.kdl":          {},
	"examples/http-caching.kdl":                    {},
	"examples/https-upstream.kdl":                  {},
	"examples/inference-routing.kdl":               {notYet: []string{"inference fallback upstreams", "inference routing", `load-balancing "least_tokens_queued"`}},
	"examples/load-balancer.kdl":                   {},
	"examples/mixed-services.kdl":                  {},
	"examples/multiple-upstreams-health-check.kdl": {},
	// Its storefront namespace uses a filter type "cache" (caching is a
	// route policy) and lists the agent "waf-agent" among its filters.
	"examples/namespaces.kdl":              {other: []string{`filter "storefront:storefront-cache": unknown type "cache"`, `filter "waf-agent" is not defined`}},
	"examples/rate-limiting-per-route.kdl": {},
	"examples/shadow-traffic.kdl":          {},
	"examples/static-site.kdl":             {},
	"examples/tracing.kdl":                 {},
	"examples/websocket.kdl":               {notYet: []string{"WebSocket frame inspection"}},
	// Parts of the multi-file example, and an old schema: not loadable on
	// their own (no system block or listener), as upstream.
	"example-multi-file/listeners/http.kdl":          {other: []string{"missing `system` block"}},
	"example-multi-file/listeners/https.kdl":         {other: []string{"missing `system` block"}},
	"example-multi-file/upstreams/backends.kdl":      {other: []string{"missing `system` block", "no listener"}},
	"example-multi-file/routes/static.kdl":           {other: []string{"missing `system` block", "no listener", `upstream "static" is not defined`}},
	"example-multi-file/routes/api.kdl":              {other: []string{"missing `system` block", "no listener", "is not defined"}},
	"example-multi-file/environments/production.kdl": {other: []string{"30:19: unexpected '['"}},
}

// notYetRE extracts the feature of a "not supported yet" error line.
var notYetRE = regexp.MustCompile(`not supported yet: (.*?)(?: — .*)?$`)

func TestCorpusAdaptsOrFailsWithNotYet(t *testing.T) {
	dir := corpusDir(t)
	var files []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".kdl") {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(corpus) {
		t.Errorf("corpus has %d files, the table %d: keep them in step", len(files), len(corpus))
	}
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			exp, ok := corpus[rel]
			if !ok {
				t.Fatalf("no expectation for %s", rel)
			}
			path := filepath.Join(dir, rel)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := Adapt(path, src, noEnv, OSFiles{})
			if len(exp.notYet) == 0 && len(exp.other) == 0 {
				if err != nil {
					t.Fatalf("expected %s to adapt, got:\n%v", rel, err)
				}
				if len(out) == 0 {
					t.Fatal("empty output")
				}
				return
			}
			if err == nil {
				t.Fatalf("expected errors, %s adapted", rel)
			}
			var ce *ConfigError
			lines := []string{err.Error()}
			if errors.As(err, &ce) {
				lines = ce.Findings
			}
			features := map[string]bool{}
			for _, l := range lines {
				if m := notYetRE.FindStringSubmatch(l); m != nil {
					features[m[1]] = true
					if !regexp.MustCompile(`^[^:]+\.kdl:\d+:\d+: `).MatchString(l) {
						t.Errorf("error without file:line:col: %s", l)
					}
					continue
				}
				matched := false
				for _, o := range exp.other {
					matched = matched || strings.Contains(l, o)
				}
				if !matched {
					t.Errorf("unexpected error (neither \"not supported yet\" nor expected): %s", l)
				}
			}
			var got []string
			for f := range features {
				got = append(got, f)
			}
			sort.Strings(got)
			if strings.Join(got, "|") != strings.Join(exp.notYet, "|") {
				t.Errorf("not-yet features:\n got  %q\n want %q", got, exp.notYet)
			}
		})
	}
}
