package adaptive

import (
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// TestPoolChangeSameLength: a pool whose addresses change while its length
// and registry snapshot stay is noticed by every policy: the state read is
// always the chosen address's.
func TestPoolChangeSameLength(t *testing.T) {
	policies := map[string]reverseproxy.Selector{
		"peak_ewma":                  provision(t, &PeakEWMA{}, nil),
		"p2c":                        provision(t, &P2C{}, nil),
		"adaptive":                   provision(t, &Adaptive{}, nil),
		"weighted_least_connections": provision(t, &WeightedLeastConnections{}, nil),
		"consistent_hash":            provision(t, &ConsistentHash{}, nil),
		"consistent_hash unbounded":  provision(t, &ConsistentHash{Unbounded: true}, nil),
		"maglev":                     provision(t, &Maglev{}, nil),
		"locality_aware":             provision(t, &LocalityAware{}, nil),
		"deterministic_subset":       provision(t, &DeterministicSubset{}, nil),
	}
	for name, s := range policies {
		before := testPool("pc1-a:1", "pc1-b:1", "pc1-c:1")
		after := testPool("pc1-a:1", "pc1-b:1", "pc1-x:1")
		for range 10 {
			s.Select(before, reqFrom("10.0.0.1"), nil)
		}
		seen := map[string]int{}
		for i := range 300 {
			u := s.Select(after, reqFrom("10.0.0."+itoa(i%200)), nil)
			seen[u.Dial]++
		}
		if seen["pc1-x:1"] == 0 {
			t.Errorf("%s: the new target is never chosen: %v", name, seen)
		}
		type viewer interface{ addrsOf() []string }
		if v, ok := s.(viewer); ok {
			if got := v.addrsOf(); len(got) != 3 || got[2] != "pc1-x:1" {
				t.Errorf("%s: view of %v", name, got)
			}
		}
	}
}

// TestTieBreakUniform: reservoir sampling over 5 ties picks each about a
// fifth of the time.
func TestTieBreakUniform(t *testing.T) {
	counts := make([]int, 5)
	const trials = 50000
	for k := range trials {
		tb := tieBreak{rnd: seeded(uint64(k + 1))}
		choice := -1
		for n := 1; n <= 5; n++ {
			if tb.keep(n) {
				choice = n - 1
			}
		}
		counts[choice]++
	}
	for i, c := range counts {
		if c < trials/5*9/10 || c > trials/5*11/10 {
			t.Errorf("tie %d chosen %d times of %d: %v", i, c, trials, counts)
		}
	}
}
