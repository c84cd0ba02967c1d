package adaptive

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestWLC: in flight ÷ weight; ties by weight, connections or in turn,
// then at random.
func TestWLC(t *testing.T) {
	reconcile(t, "wlc", map[string]int{"wlc-a:1": 1, "wlc-b:1": 2, "wlc-c:1": 2})
	pool := testPool("wlc-a:1", "wlc-b:1", "wlc-c:1")
	s := provision(t, &WeightedLeastConnections{Upstream: "wlc"}, nil)
	defer func() {
		for _, a := range []string{"wlc-a:1", "wlc-b:1", "wlc-c:1"} {
			inflight(t, a, 0)
		}
	}()
	// Idle: tie at 0; the heavier b and c share.
	c := count(s, pool, 1000)
	if c["wlc-a:1"] != 0 || c["wlc-b:1"] < 400 || c["wlc-c:1"] < 400 {
		t.Fatalf("idle, weight tie breaker: %v", c)
	}
	// a: 1/1 = 1; b: 3/2 = 1.5; c: 4/2 = 2 → a.
	inflight(t, "wlc-a:1", 1)
	inflight(t, "wlc-b:1", 3)
	inflight(t, "wlc-c:1", 4)
	if c := count(s, pool, 10); c["wlc-a:1"] != 10 {
		t.Fatalf("lowest ratio: %v", c)
	}
	// a: 2/1 = 2 ties c: 4/2 = 2 → higher weight c; with connections → a.
	inflight(t, "wlc-a:1", 2)
	inflight(t, "wlc-b:1", 5)
	if c := count(s, pool, 10); c["wlc-c:1"] != 10 {
		t.Fatalf("tie by weight: %v", c)
	}
	conns := provision(t, &WeightedLeastConnections{Upstream: "wlc", TieBreaker: tieConnections}, nil)
	if c := count(conns, pool, 10); c["wlc-a:1"] != 10 {
		t.Fatalf("tie by connections: %v", c)
	}
	rr := provision(t, &WeightedLeastConnections{Upstream: "wlc", TieBreaker: tieRoundRobin}, nil)
	if c := count(rr, pool, 10); c["wlc-a:1"] == 0 || c["wlc-c:1"] == 0 || c["wlc-b:1"] != 0 {
		t.Fatalf("tie in turn: %v", c)
	}
	// Unavailable and weight-0 targets are skipped.
	setAvailable(pool[0], false)
	setAvailable(pool[2], false)
	if c := count(s, pool, 10); c["wlc-b:1"] != 10 {
		t.Fatalf("only b: %v", c)
	}
	setAvailable(pool[1], false)
	if s.Select(pool, nil, nil) != nil {
		t.Fatal("none available")
	}
}

func TestWLCConfig(t *testing.T) {
	var s WeightedLeastConnections
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("weighted_least_connections {\n upstream api\n tie_breaker connections\n}")); err != nil {
		t.Fatal(err)
	}
	if s.Upstream != "api" || s.TieBreaker != tieConnections {
		t.Fatalf("parsed %+v", &s)
	}
	bad := &WeightedLeastConnections{TieBreaker: "coin"}
	bad.Provision(testCtx)
	if bad.Validate() == nil {
		t.Error("bad tie breaker accepted")
	}
}
