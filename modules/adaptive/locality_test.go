package adaptive

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestLocalityAware: local targets by smooth weighted round robin; when
// none is available, the best zone of zone_priority, in turn or at
// random, or nothing.
func TestLocalityAware(t *testing.T) {
	reconcile(t, "loc", map[string]int{"la-a:1": 3, "la-b:1": 1, "la-c:1": 1, "la-d:1": 1, "us-east/la-e:1": 1})
	addrs := []string{"la-a:1", "la-b:1", "la-c:1", "la-d:1", "us-east/la-e:1"}
	s := provision(t, &LocalityAware{
		Upstream:     "loc",
		Zone:         "eu-1",
		Zones:        map[string]string{"la-a:1": "eu-1", "la-b:1": "eu-1", "la-c:1": "eu-2", "la-d:1": "us-1"},
		ZonePriority: []string{"us-1", "eu-2"},
	}, nil)
	pool := testPool(addrs...)
	var seq []string
	for range 8 {
		seq = append(seq, s.Select(pool, nil, nil).Dial[3:4])
	}
	if got := strings.Join(seq, ""); got != "aabaaaba" {
		t.Fatalf("local smooth 3:1: %s", got)
	}
	// One local target down: the other local one takes everything (the
	// O(n) path, past the precomputed cycle).
	setAvailable(pool[0], false)
	if c := count(s, pool, 10); c["la-b:1"] != 10 {
		t.Fatalf("one local target down: %v", c)
	}
	// Another pool of the same length under the same snapshot: rebuilt.
	other := testPool("la-a:1", "la-b:1", "la-c:1", "la-d:1", "la-f:1")
	if u := s.Select(other, nil, nil); u == nil || (u.Dial != "la-a:1" && u.Dial != "la-b:1") {
		t.Fatalf("stale view: %v", u)
	}
	// No local target: the first zone of the priority list (us-1: d).
	setAvailable(pool[1], false)
	if c := count(s, pool, 10); c["la-d:1"] != 10 {
		t.Fatalf("zone priority: %v", c)
	}
	setAvailable(pool[3], false)
	if c := count(s, pool, 10); c["la-c:1"] != 10 {
		t.Fatalf("second zone: %v", c)
	}
	setAvailable(pool[2], false)
	if c := count(s, pool, 10); c["us-east/la-e:1"] != 10 {
		t.Fatalf("unlisted zone: %v", c)
	}
	setAvailable(pool[4], false)
	if s.Select(pool, nil, nil) != nil {
		t.Fatal("none available")
	}
	// Without priority: any remote zone, in turn or at random; none: 503.
	pool = testPool(addrs...)
	setAvailable(pool[0], false)
	setAvailable(pool[1], false)
	rr := provision(t, &LocalityAware{Zone: "eu-1", Zones: map[string]string{"la-a:1": "eu-1", "la-b:1": "eu-1"}}, nil)
	if c := count(rr, pool, 30); c["la-c:1"] != 10 || c["la-d:1"] != 10 || c["us-east/la-e:1"] != 10 {
		t.Fatalf("round robin fallback: %v", c)
	}
	rnd := provision(t, &LocalityAware{Zone: "eu-1", Zones: map[string]string{"la-a:1": "eu-1"}, FallbackRaw: json.RawMessage(`"random"`)}, nil)
	if c := count(rnd, pool, 300); len(c) != 3 {
		t.Fatalf("random fallback: %v", c)
	}
	none := provision(t, &LocalityAware{Zone: "eu-1", Zones: map[string]string{"la-a:1": "eu-1", "la-b:1": "eu-1"}, FallbackRaw: json.RawMessage(`"none"`)}, nil)
	if none.Select(pool, nil, nil) != nil {
		t.Fatal("fallback none selected a remote target")
	}
	// Any selection policy chooses among the best remote zone's targets:
	// first takes the first available of them in pool order.
	first := provision(t, &LocalityAware{Zone: "eu-1", Zones: map[string]string{"la-a:1": "eu-1", "la-b:1": "eu-1", "la-c:1": "eu-2", "la-d:1": "us-1"}, ZonePriority: []string{"us-1", "eu-2"},
		FallbackRaw: json.RawMessage(`{"policy":"first"}`)}, nil)
	if c := count(first, pool, 10); c["la-d:1"] != 10 {
		t.Fatalf("first fallback in the priority zone: %v", c)
	}
	setAvailable(pool[3], false)
	if c := count(first, pool, 10); c["la-c:1"] != 10 {
		t.Fatalf("first fallback, next zone: %v", c)
	}
}

func TestZones(t *testing.T) {
	for addr, want := range map[string][2]string{
		"zone=us-west-1,10.0.0.1:80": {"us-west-1", "10.0.0.1:80"},
		"us-west-1/10.0.0.1:80":      {"us-west-1", "10.0.0.1:80"},
		"10.0.0.1:80":                {"unknown", "10.0.0.1:80"},
		"tcp/10.0.0.1:80":            {"unknown", "tcp/10.0.0.1:80"},
		"zone=,10.0.0.1:80":          {"unknown", "zone=,10.0.0.1:80"},
	} {
		if z, r := splitZone(addr); z != want[0] || r != want[1] {
			t.Errorf("%s: %s %s", addr, z, r)
		}
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if localZone(getenv) != "default" {
		t.Error("default zone")
	}
	env["REGION"] = "r"
	env["SENTINEL_ZONE"] = "s"
	if localZone(getenv) != "s" {
		t.Error("SENTINEL_ZONE first")
	}
	t.Setenv("SENTINEL_ZONE", "from-env")
	s := provision(t, &LocalityAware{}, nil)
	if s.Zone != "from-env" {
		t.Errorf("zone %q", s.Zone)
	}
}

func TestLocalityConfig(t *testing.T) {
	var s LocalityAware
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`locality_aware api {
		zone eu-1
		target_zone 10.0.0.1:80 eu-2
		fallback random
		zone_priority eu-2 us-1
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Upstream != "api" || s.Zone != "eu-1" || s.Zones["10.0.0.1:80"] != "eu-2" || string(s.FallbackRaw) != `{"policy":"random"}` || strings.Join(s.ZonePriority, ",") != "eu-2,us-1" {
		t.Fatalf("parsed %+v", &s)
	}
	for in, want := range map[string]string{
		"fallback none":                                `"none"`,
		"fallback random_choose 3":                     `{"choose":3,"policy":"random_choose"}`,
		"fallback first":                               `{"policy":"first"}`,
		"fallback header X-Lb {\n fallback random\n }": `{"fallback":{"policy":"random"},"field":"X-Lb","policy":"header"}`,
	} {
		var s LocalityAware
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("locality_aware {\n" + in + "\n}")); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if string(s.FallbackRaw) != want {
			t.Errorf("%s: %s, want %s", in, s.FallbackRaw, want)
		}
	}
	if err := new(LocalityAware).UnmarshalCaddyfile(caddyfile.NewTestDispenser("locality_aware {\n target_zone a\n}")); err == nil {
		t.Error("target_zone without zone")
	}
	if err := new(LocalityAware).UnmarshalCaddyfile(caddyfile.NewTestDispenser("locality_aware {\n fallback nearest\n}")); err == nil {
		t.Error("unknown fallback policy accepted")
	}
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	for raw, want := range map[string]string{
		`"nearest"`:            `locality_aware: fallback "nearest": expected a selection policy object or one of none, random, round_robin`,
		`{"policy":"nearest"}`: "loading the fallback selection policy",
	} {
		err := (&LocalityAware{FallbackRaw: json.RawMessage(raw)}).Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}

// TestDeterministicSubset: a stable subset of subset_size per proxy id,
// different across ids, refilled in rank order; inner policies.
func TestDeterministicSubset(t *testing.T) {
	addrs := addrList("ds", 30)
	pool := testPool(addrs...)
	s := provision(t, &DeterministicSubset{ProxyID: "p1", SubsetSize: 5}, nil)
	c := count(s, pool, 100)
	if len(c) != 5 {
		t.Fatalf("subset: %v", c)
	}
	for _, n := range c {
		if n != 20 {
			t.Fatalf("round robin in the subset: %v", c)
		}
	}
	other := provision(t, &DeterministicSubset{ProxyID: "p2", SubsetSize: 5}, nil)
	c2 := count(other, pool, 100)
	same := 0
	for a := range c2 {
		if c[a] > 0 {
			same++
		}
	}
	if same == 5 {
		t.Error("two proxies got the same subset")
	}
	// An unavailable member is replaced by the next in rank.
	var gone string
	for a := range c {
		gone = a
		break
	}
	for _, u := range pool {
		if u.Dial == gone {
			setAvailable(u, false)
		}
	}
	c3 := count(s, pool, 100)
	if len(c3) != 5 || c3[gone] != 0 {
		t.Fatalf("refill: %v", c3)
	}
	lc := provision(t, &DeterministicSubset{ProxyID: "p1", SubsetSize: 2, InnerRaw: json.RawMessage(`"least_connections"`)}, nil)
	pair := count(lc, pool, 200)
	if len(pair) != 2 {
		t.Fatalf("least connections subset: %v", pair)
	}
	if _, ok := lc.inner.(*reverseproxy.LeastConnSelection); !ok {
		t.Fatalf("least_connections is %T, want Caddy's least_conn", lc.inner)
	}
	// Any selection policy chooses within the subset, which it gets in
	// rank order: first always takes the lowest-ranked available target.
	first := provision(t, &DeterministicSubset{ProxyID: "p1", SubsetSize: 3, InnerRaw: json.RawMessage(`{"policy":"first"}`)}, nil)
	c4 := count(first, pool, 20)
	if len(c4) != 1 {
		t.Fatalf("first within the subset: %v", c4)
	}
	for a := range c4 {
		if _, ok := c3[a]; !ok {
			t.Fatalf("first chose %s, outside the subset %v", a, c3)
		}
	}
	rnd := provision(t, &DeterministicSubset{ProxyID: "p1", SubsetSize: 3, InnerRaw: json.RawMessage(`"random"`)}, nil)
	if c := count(rnd, pool, 300); len(c) != 3 {
		t.Fatalf("random subset: %v", c)
	}
	big := provision(t, &DeterministicSubset{ProxyID: "p1", SubsetSize: 100}, nil)
	if c := count(big, pool, 290); len(c) != 29 {
		t.Fatalf("subset larger than the pool: %d", len(c))
	}
	for _, u := range pool {
		setAvailable(u, false)
	}
	if s.Select(pool, nil, nil) != nil {
		t.Fatal("none available")
	}
}

func TestSubsetConfig(t *testing.T) {
	var s DeterministicSubset
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("deterministic_subset {\n subset_size 4\n proxy_id edge-1\n inner random\n}")); err != nil {
		t.Fatal(err)
	}
	if s.SubsetSize != 4 || s.ProxyID != "edge-1" || string(s.InnerRaw) != `{"policy":"random"}` {
		t.Fatalf("parsed %+v", &s)
	}
	s = DeterministicSubset{}
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("deterministic_subset {\n inner least_connections\n}")); err != nil || string(s.InnerRaw) != `{"policy":"least_conn"}` {
		t.Fatalf("inner least_connections: %s (%v)", s.InnerRaw, err)
	}
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	if bad := (&DeterministicSubset{SubsetSize: -1}); bad.Provision(ctx) != nil || bad.Validate() == nil {
		t.Errorf("subset_size -1 accepted")
	}
	for _, raw := range []string{`"first"`, `{"policy":"nope"}`, `7`} {
		if err := (&DeterministicSubset{InnerRaw: json.RawMessage(raw)}).Provision(ctx); err == nil {
			t.Errorf("inner %s accepted", raw)
		}
	}
	env := map[string]string{"SENTINEL_PROXY_ID": "x"}
	if defaultProxyID(func(k string) string { return env[k] }, nil) != "x" {
		t.Error("proxy id from env")
	}
	if defaultProxyID(func(string) string { return "" }, func() (string, error) { return "h", nil }) != "h" {
		t.Error("proxy id from host name")
	}
	if id := defaultProxyID(func(string) string { return "" }, func() (string, error) { return "", errors.New("x") }); !strings.HasPrefix(id, "proxy-") {
		t.Error("random proxy id")
	}
}

func TestLeastTokensQueued(t *testing.T) {
	var s LeastTokensQueued
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("least_tokens_queued")); err != nil {
		t.Fatal(err)
	}
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("least_tokens_queued x")); err == nil {
		t.Error("argument accepted")
	}
	err := s.Provision(testCtx)
	if err == nil || err.Error() != "least_tokens_queued needs the inference gateway (not supported)" {
		t.Fatalf("provision: %v", err)
	}
	if s.Select(testPool("a:1"), nil, nil) != nil {
		t.Error("selected")
	}
}
