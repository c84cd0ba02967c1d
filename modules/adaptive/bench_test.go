package adaptive

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// BenchmarkSelect measures one selection of each policy among 3, 10 and
// 100 targets with feedback (latencies, requests in flight). A policy
// checks on each selection that the pool is the one it last saw (O(n)
// string comparisons) and otherwise rebuilds its view:
//
//	go test ./adaptive -run '^$' -bench Select -benchmem
func BenchmarkSelect(b *testing.B) {
	policies := []struct {
		name string
		new  func(upstream string) policy
	}{
		{"sentinel_weighted", func(u string) policy { return &Weighted{Upstream: u} }},
		{"peak_ewma", func(u string) policy { return &PeakEWMA{Upstream: u} }},
		{"adaptive", func(u string) policy { return &Adaptive{Upstream: u} }},
		{"p2c", func(u string) policy { return &P2C{Upstream: u, LoadMetric: loadBoth} }},
		{"weighted_least_connections", func(u string) policy { return &WeightedLeastConnections{Upstream: u} }},
		{"consistent_hash", func(u string) policy { return &ConsistentHash{Upstream: u} }},
		{"maglev", func(u string) policy { return &Maglev{Upstream: u} }},
		{"locality_aware", func(u string) policy { return &LocalityAware{Upstream: u, Zone: "z1"} }},
		{"deterministic_subset", func(u string) policy {
			return &DeterministicSubset{Upstream: u, InnerRaw: json.RawMessage(`{"policy":"least_conn"}`)}
		}},
	}
	caddyPolicies := []struct {
		name string
		s    reverseproxy.Selector
	}{
		{"caddy_round_robin", new(reverseproxy.RoundRobinSelection)},
		{"caddy_least_conn", reverseproxy.LeastConnSelection{}},
		{"caddy_random_choose_2", reverseproxy.RandomChoiceSelection{Choose: 2}},
	}
	for _, p := range caddyPolicies {
		for _, n := range []int{3, 10, 100} {
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				pool := testPool(addrList("bench-caddy", n)...)
				req := httptest.NewRequest("GET", "/", nil)
				b.ReportAllocs()
				for b.Loop() {
					p.s.Select(pool, req, nil)
				}
			})
		}
	}
	for _, p := range policies {
		for _, n := range []int{3, 10, 100} {
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				id := fmt.Sprintf("bench-%s-%d", p.name, n)
				weights := map[string]int{}
				addrs := make([]string, n)
				for i := range addrs {
					addrs[i] = fmt.Sprintf("z%d/10.1.%d.%d:80", i%2+1, n, i)
					weights[addrs[i]] = i%3 + 1
				}
				reconcile(b, id, weights)
				s := p.new(id)
				if w, ok := s.(*Weighted); ok {
					w.Provision(testCtx)
				} else {
					provision(b, s, nil)
				}
				pool := testPool(addrs...)
				req := httptest.NewRequest("GET", "/", nil)
				s.Select(pool, req, nil)
				now := monotime()
				for i, a := range addrs {
					feed(a, now, okSample(int64(time.Millisecond)*int64(i%5+1)))
				}
				b.ReportAllocs()
				for b.Loop() {
					s.Select(pool, req, nil)
				}
			})
		}
	}
}
