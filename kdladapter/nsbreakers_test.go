package kdladapter

import (
	"strings"
	"testing"
)

// TestSharedBreakerWarning: upstreams of different namespaces with
// circuit breakers and a shared target address are warned about (their
// breaker state is the address's); the same namespace's, different
// addresses, or one side without a breaker are not.
func TestSharedBreakerWarning(t *testing.T) {
	cfg := func(aTarget, bBreaker string) string {
		return `
system { }
listeners { listener "http" { address "127.0.0.1:18080"; tenants { header "X-T"; }; }; }
upstreams { upstream "g" { target "127.0.0.1:9009"; circuit-breaker { failure-threshold 2; }; }; }
routes { route "g" { matches { path "/g"; }; upstream "g"; }; }
namespace "team-a" {
    upstreams {
        upstream "api" { target "` + aTarget + `"; circuit-breaker { failure-threshold 2; }; }
        upstream "api2" { target "` + aTarget + `"; circuit-breaker { failure-threshold 2; }; }
    }
    routes { route "r" { upstream "api"; }; route "r2" { matches { path "/2"; }; upstream "api2"; }; }
}
namespace "team-b" {
    upstreams { upstream "api" { target "127.0.0.1:9001"; ` + bBreaker + ` }; }
    routes { route "r" { upstream "api"; }; }
}
`
	}
	warned := func(src string) string {
		_, warns := mustAdapt(t, src)
		var out []string
		for _, w := range warns {
			if strings.Contains(w.String(), "circuit-breaker") {
				out = append(out, w.String())
			}
		}
		return strings.Join(out, "\n")
	}
	got := warned(cfg("127.0.0.1:9001", "circuit-breaker { failure-threshold 1; }"))
	for _, want := range []string{
		`test.kdl:8 (upstreams.upstream.circuit-breaker): upstream "team-a:api" shares target 127.0.0.1:9001 with "team-b:api", also with a circuit breaker`,
		`test.kdl:9 (upstreams.upstream.circuit-breaker): upstream "team-a:api2" shares target 127.0.0.1:9001 with "team-b:api"`,
		`upstream "team-b:api" shares target 127.0.0.1:9001 with "team-a:api", "team-a:api2"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %s:\n%s", want, got)
		}
	}
	// A global upstream counts as another scope.
	if got := warned(cfg("127.0.0.1:9009", "")); !strings.Contains(got, `upstream "g" shares target 127.0.0.1:9009 with "team-a:api", "team-a:api2"`) {
		t.Errorf("global and namespace:\n%s", got)
	}
	for name, src := range map[string]string{
		"different addresses": cfg("127.0.0.1:9002", "circuit-breaker { failure-threshold 1; }"),
		"no breaker on b":     cfg("127.0.0.1:9001", ""),
	} {
		if got := warned(src); got != "" {
			t.Errorf("%s: warned\n%s", name, got)
		}
	}
}
