package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestShadow: two handlers of one route (the route is in every listener's
// server) share the series; the series exist at zero from the start.
func TestShadow(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a, err := NewShadow(reg, "api", "canary")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewShadow(reg, "api", "canary")
	if err != nil {
		t.Fatal(err)
	}
	if got := scrape(t, reg, ShadowDroppedName); !strings.Contains(got, `sentinel_shadow_dropped_total{namespace="",reason="limit",route="api",upstream="canary"} 0`) {
		t.Errorf("series not at zero from the start:\n%s", got)
	}
	a.Start()
	b.Start()
	a.Start()
	a.Sent()
	b.Failed(ShadowTimeout)
	a.Dropped(ShadowLimit)
	b.Dropped(ShadowBodyTooLarge)
	for name, want := range map[string]string{
		ShadowSentName:     `sentinel_shadow_sent_total{namespace="",route="api",upstream="canary"} 1`,
		ShadowFailedName:   `sentinel_shadow_failed_total{namespace="",reason="timeout",route="api",upstream="canary"} 1`,
		ShadowInFlightName: `sentinel_shadow_in_flight{namespace="",route="api",upstream="canary"} 1`,
		ShadowDroppedName:  `sentinel_shadow_dropped_total{namespace="",reason="body_too_large",route="api",upstream="canary"} 1`,
	} {
		if got := scrape(t, reg, name); !strings.Contains(got, want) {
			t.Errorf("%s:\n%s\nwant %s", name, got, want)
		}
	}
	if got := scrape(t, reg, ShadowDroppedName); !strings.Contains(got, `reason="limit",route="api",upstream="canary"} 1`) {
		t.Errorf("limit drops:\n%s", got)
	}
	none, err := NewShadow(nil, "x", "y")
	if err != nil || none == nil {
		t.Fatal("nil registry")
	}
	none.Start()
	none.Failed(ShadowError)
	none.Dropped(ShadowBodyError)
}

// TestShadowRegisterConflict: a collector of the same name and other
// labels registered before is an error, not a panic.
func TestShadowRegisterConflict(t *testing.T) {
	for _, name := range []string{ShadowSentName, ShadowFailedName, ShadowDroppedName, ShadowInFlightName} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: "other"}, []string{"other"}))
		if _, err := NewShadow(reg, "api", "canary"); err == nil {
			t.Errorf("%s: no error for a conflicting collector", name)
		}
	}
}
