package upstreamview

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestViewShowsBalancing: a live peak_ewma policy of an upstream adds its
// estimates to each target; a drain deadline and the healthy count show.
func TestViewShowsBalancing(t *testing.T) {
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{
		{ID: "uv-lb", Targets: []registry.TargetSpec{{Address: "127.0.0.1:7101", Weight: 1}, {Address: "127.0.0.1:7102", Weight: 3}}},
		{ID: "uv-plain", Targets: []registry.TargetSpec{{Address: "127.0.0.1:7103", Weight: 1}}},
	}, nil)
	p := &adaptive.PeakEWMA{Upstream: "uv-lb"}
	if err := p.Provision(registry.WithRegistry(caddy.Context{}, reg)); err != nil {
		t.Fatal(err)
	}
	defer p.Cleanup()
	pool := reverseproxy.UpstreamPool{
		{Host: new(reverseproxy.Host), Dial: "127.0.0.1:7101"},
		{Host: new(reverseproxy.Host), Dial: "127.0.0.1:7102"},
	}
	for range 10 {
		if p.Select(pool, httptest.NewRequest("GET", "/", nil), nil) == nil {
			t.Fatal("no selection")
		}
	}
	if _, err := reg.Drain("uv-lb", "127.0.0.1:7102", time.Minute, 0); err != nil {
		t.Fatal(err)
	}

	all := All(reg)
	if len(all) != 2 {
		t.Fatalf("%d upstreams", len(all))
	}
	lb := all[0]
	if lb.ID != "uv-lb" || len(lb.Targets) != 2 || lb.HealthyTargets != 1 {
		t.Fatalf("%+v", lb)
	}
	var sel uint64
	for _, tg := range lb.Targets {
		if len(tg.Balancing) != 1 || tg.Balancing[0].Policy != "peak_ewma" || tg.Balancing[0].Score == nil {
			t.Fatalf("%s: balancing %+v", tg.Address, tg.Balancing)
		}
		sel += tg.Balancing[0].Selections
	}
	if sel != 10 {
		t.Errorf("selections %d, want 10", sel)
	}
	if lb.Targets[1].DrainDeadline == nil || lb.Targets[1].State != registry.StateDrained {
		t.Errorf("drain not shown: %+v", lb.Targets[1])
	}
	if plain := all[1]; len(plain.Targets) != 1 || plain.Targets[0].Balancing != nil {
		t.Errorf("plain upstream: %+v", plain)
	}
	js, err := json.Marshal(lb)
	if err != nil {
		t.Fatal(err) // an infinite score would fail here
	}
	for _, want := range []string{`"balancing":[{"policy":"peak_ewma"`, `"healthy_targets":1`, `"latency_seconds":`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("%s lacks %s", js, want)
		}
	}
}

// TestViewFollowsWeightPatch is issue 14: after a PATCH of a target's
// weight, its balancing entries show the new weight at once — before any
// request — for every policy that reads the registry's weights.
func TestViewFollowsWeightPatch(t *testing.T) {
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{
		{ID: "uv-patch", Targets: []registry.TargetSpec{{Address: "127.0.0.1:7201", Weight: 1}, {Address: "127.0.0.1:7202", Weight: 1}}},
	}, nil)
	policies := []reverseproxy.Selector{
		&adaptive.Weighted{Upstream: "uv-patch"}, &adaptive.Adaptive{Upstream: "uv-patch"},
		&adaptive.PeakEWMA{Upstream: "uv-patch"}, &adaptive.P2C{Upstream: "uv-patch"},
		&adaptive.WeightedLeastConnections{Upstream: "uv-patch"}, &adaptive.ConsistentHash{Upstream: "uv-patch"},
		&adaptive.Maglev{Upstream: "uv-patch"}, &adaptive.LocalityAware{Upstream: "uv-patch"},
		&adaptive.DeterministicSubset{Upstream: "uv-patch"},
	}
	pool := reverseproxy.UpstreamPool{
		{Host: new(reverseproxy.Host), Dial: "127.0.0.1:7201"},
		{Host: new(reverseproxy.Host), Dial: "127.0.0.1:7202"},
	}
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: context.Background()}, reg)) // inner/fallback policies are loaded modules
	defer cancel()
	for _, p := range policies {
		if err := p.(caddy.Provisioner).Provision(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.(caddy.CleanerUpper).Cleanup()
		if p.Select(pool, httptest.NewRequest("GET", "/", nil), nil) == nil {
			t.Fatal("no selection")
		}
	}
	five := 5
	if _, err := reg.PatchTarget("uv-patch", "127.0.0.1:7201", registry.TargetPatch{Weight: &five}, 0); err != nil {
		t.Fatal(err)
	}
	u, _ := reg.Get("uv-patch")
	v := Of(reg, u)
	tg := v.Targets[0]
	if tg.Address != "127.0.0.1:7201" || tg.Weight != 5 {
		t.Fatalf("target %+v", tg)
	}
	if len(tg.Balancing) != len(policies) {
		t.Fatalf("%d balancing entries, want %d: %+v", len(tg.Balancing), len(policies), tg.Balancing)
	}
	for _, e := range tg.Balancing {
		if e.Weight != 5 {
			t.Errorf("%s: weight %v, want 5", e.Policy, e.Weight)
		}
	}
	if w := v.Targets[1].Balancing[0].Weight; w != 1 {
		t.Errorf("the other target: weight %v, want 1", w)
	}
}
