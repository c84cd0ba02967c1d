package kdladapter

import (
	"strings"
	"testing"
)

// TestMetricsRouteTurnsMetricsOn: a route answering with builtin-handler
// "metrics" turns the http app's metrics on without an observability
// block (the observability mapping reads the routes itself, instead of a
// flag the route mapping sets before it).
func TestMetricsRouteTurnsMetricsOn(t *testing.T) {
	for _, name := range []string{"metrics", "METRICS"} {
		out, _ := mustAdapt(t, minimal+`routes { route "m" { builtin-handler "`+name+`"; }; }`)
		if !strings.Contains(string(out), `"metrics":{}`) {
			t.Errorf("%s: http app metrics missing: %s", name, out)
		}
	}
	out, _ := mustAdapt(t, minimal+`routes { route "h" { builtin-handler "health"; }; }`)
	if strings.Contains(string(out), `"metrics":{}`) {
		t.Errorf("metrics on without a metrics route: %s", out)
	}
}
