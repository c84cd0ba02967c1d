package kdladapter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// oldPolicyObj is the obj loadBalancing returned before the twelfth
// round (issue 13.8): the policy's typed members, or {"policy": name}
// with the upstream of the policies that read weights from the
// registry.
func oldPolicyObj(p lbPolicy) obj {
	if p.typed != nil {
		return p.typed
	}
	o := obj{"policy": p.name}
	if p.upstream != "" {
		o["upstream"] = p.upstream
	}
	return o
}

// TestPolicyJSONSameAsObj: an upstream's selection policy written once
// (lbPolicy.appendTo) is what encode wrote of the obj it replaces, and
// the policy wrapped for retries (untriedJSON) is encode's obj of the
// wrapper: for every load-balancing name (each spelling, without a
// block), each algorithm with settings with its block filled, and the
// locality policy with zones.
func TestPolicyJSONSameAsObj(t *testing.T) {
	blocks := map[string]string{
		"peak_ewma":                  `decay-time "10s"; default-rtt "50ms"; penalize-failures #true; failure-penalty "1s"; max-retry-after "30s"; choices 2`,
		"adaptive":                   `adjustment-interval "5s"; min-weight-ratio 0.1; max-weight-ratio 4.0; error-threshold 0.2; latency-threshold "500ms"; latency-ratio 1.5; ewma-alpha 0.3; recovery-factor 1.1; penalty-rate 0.5; min-requests 10; max-carry-over 3; breaker-failures 5; breaker-successes 2; breaker-timeout "30s"; disable-breaker #true`,
		"p2c":                        `load-metric "latency"; choices 3; latency-window "30s"; penalize-failures #false; failure-penalty "2s"; max-retry-after "1m"`,
		"weighted_least_connections": `tie-breaker "weight"`,
		"consistent_hash":            `key "header"; key-name "X-User"; vnodes 80; hash "xxhash"; load-factor 1.25; unbounded #true`,
		"maglev":                     `key "cookie"; key-name "sid"; table-size 65537`,
		"locality_aware":             `zone "eu-1"; fallback "none"; zone-priority "eu-1" "eu-2"`,
		"sticky":                     `cookie-name "LB"; cookie-ttl "2h"; fallback "ip_hash"`,
		"deterministic_subset":       `subset-size 2; proxy-id "p<1>"; inner "least_connections"`,
	}
	var src strings.Builder
	for i, name := range LoadBalancingNames() {
		fmt.Fprintf(&src, "load-balancing %q\n", name)
		if b, ok := blocks[lbNames[name]]; ok && i%2 == 0 {
			fmt.Fprintf(&src, "load-balancing %q { %s; }\n", name, b)
		}
	}
	for algo, b := range blocks {
		fmt.Fprintf(&src, "load-balancing %q { %s; }\n", algo, b)
	}
	doc, err := kdl.Parse("lb.kdl", []byte(src.String()))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, n := range doc.Nodes {
		d := &diag{}
		a := &adapter{d: d}
		id := fmt.Sprintf(`u%d"<&>`, i)
		p := a.loadBalancing(id, n, []int64{2, 1})
		if p.name == "" {
			// Not available yet (least_tokens_queued): no policy, as
			// before.
			if lbCaddy[lbNames[n.Args[0].Str]] != "" || d.err() == nil {
				t.Errorf("%s: no policy, error %v", n.Args[0].Str, d.err())
			}
			continue
		}
		if err := d.err(); err != nil {
			t.Fatalf("%s: %v", n.Args[0].Str, err)
		}
		seen[lbNames[strings.ToLower(n.Args[0].Str)]] = true
		if p.typed != nil && p.name == "locality_aware" {
			p.typed["zones"] = obj{"10.0.0.1:80": "eu-1", "10.0.0.2:80": "eu-2"}
		}
		old := oldPolicyObj(p)
		want := string(encode(nil, old))
		got := p.appendTo([]byte("prefix"))
		if string(got[len("prefix"):]) != want {
			t.Errorf("%s:\n got %s\nwant %s", n.Args[0].Str, got, want)
		}
		if old["policy"] != p.name {
			t.Errorf("%s: name %q, the obj's policy %v", n.Args[0].Str, p.name, old["policy"])
		}
		// The wrapper for retries, around the policy written once.
		wantUntried := string(encode(nil, obj{policyInlineKey: untriedPolicy, untriedInnerKey: old}))
		if got := string(untriedJSON(got[len("prefix"):])); got != wantUntried {
			t.Errorf("%s untried:\n got %s\nwant %s", n.Args[0].Str, got, wantUntried)
		}
	}
	for algo := range lbCaddy {
		if !seen[algo] {
			t.Errorf("algorithm %s not tested", algo)
		}
	}
}

// TestTransportWithSameAsTree: a route's transport with its own timeouts
// (transportWith, members of the upstream's transport written once
// replaced) is what encode wrote of typedTree's tree of the upstream's
// transport with the timeouts set: for the zero transport, one with
// every setting set, and each setting alone, with each timeout alone
// and both.
func TestTransportWithSameAsTree(t *testing.T) {
	a := &adapter{}
	for name, tr := range transportCases(t) {
		raw := transportJSON.raw(tr)
		for _, to := range [][2]string{{"2s", ""}, {"", "1m30s"}, {"250ms", "3s"}} {
			tree := a.typedTree(tr)
			tree[transportInlineKey] = transportModule
			if to[0] != "" {
				tree[dialTimeoutKey] = to[0]
			}
			if to[1] != "" {
				tree[headerTimeoutKey] = to[1]
			}
			want := string(encode(nil, tree))
			if got := string(encode(nil, transportWith(raw, to[0], to[1]))); got != want {
				t.Errorf("%s, timeouts %q:\n got %s\nwant %s", name, to, got, want)
			}
		}
	}
}

// TestHealthJSONSameAsTree: the passive health checks written once per
// upstream are the encoding of typedTree's tree the routes held.
func TestHealthJSONSameAsTree(t *testing.T) {
	full := &reverseproxy.PassiveHealthChecks{}
	fillValue(t, reflect.ValueOf(full).Elem(), 0)
	a := &adapter{}
	for i, p := range []*reverseproxy.PassiveHealthChecks{{}, full, {MaxFails: 5, UnhealthyStatus: []int{500, 502}}} {
		tree := a.typedTree(reverseproxy.HealthChecks{Passive: p})
		var h jsonMembers
		h.set(proxyKeys.healthChecks, json.RawMessage(encode(nil, tree)))
		if got, want := string(h.appendTo(nil)), string(encode(nil, obj{proxyKeys.healthChecks: tree})); got != want {
			t.Errorf("passive %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestUpstreamBasesInSlabs: the upstreams' bases, carved from the
// adapter's slabs and their JSON kept in its chunks, each keep their
// own targets, policy, transport and source, for more upstreams than a
// slab holds; a base released in place keeps the sentinel app's part
// only.
func TestUpstreamBasesInSlabs(t *testing.T) {
	n := 2*baseSlabSize + 3
	var src strings.Builder
	src.WriteString(minimal)
	src.WriteString("upstreams {\n")
	for i := range n {
		fmt.Fprintf(&src, "    upstream \"u%d\" {\n        target \"10.0.%d.1:80\" weight=%d\n        targets { target \"10.0.%d.2:80\"; target \"10.0.%d.3:80\"; }\n        load-balancing \"weighted\"\n        timeouts { connect-secs %d; }\n    }\n", i, i%250, 1+i%5, i%250, i%250, 1+i%50)
	}
	src.WriteString("}\n")
	d := &diag{}
	l := &loader{d: d, lookupEnv: noEnv, files: OSFiles{}, max: MaxConfigBytes}
	nodes := l.loadMain("slabs.kdl", []byte(src.String()))
	a := &adapter{d: d, filename: "slabs.kdl"}
	a.build(nodes)
	if err := d.err(); err != nil {
		t.Fatal(err)
	}
	if len(a.proxies) != n {
		t.Fatalf("%d bases, want %d", len(a.proxies), n)
	}
	for i := range n {
		id := fmt.Sprintf("u%d", i)
		b := a.proxies[id]
		if len(b.targets) != 3 || cap(b.targets) != 3 || b.targets[0].Address != fmt.Sprintf("10.0.%d.1:80", i%250) || b.targets[2].Address != fmt.Sprintf("10.0.%d.3:80", i%250) {
			t.Fatalf("%s: targets %+v (capacity %d)", id, b.targets, cap(b.targets))
		}
		if want := fmt.Sprintf(`{"policy":"sentinel_weighted","upstream":%q}`, id); string(b.policy) != want || b.policyName != "sentinel_weighted" {
			t.Fatalf("%s: policy %s (%q), want %s", id, b.policy, b.policyName, want)
		}
		if want := fmt.Sprintf(`"dial_timeout":"%ds"`, 1+i%50); !strings.Contains(string(b.transport), want) {
			t.Fatalf("%s: transport %s without %s", id, b.transport, want)
		}
		if string(b.source) != string(appendSourceJSON(nil, id)) {
			t.Fatalf("%s: source %s", id, b.source)
		}
	}
	b := a.proxies["u7"]
	a.uses = map[string]int{"u7": 1}
	a.releaseBase("u7")
	if a.proxies["u7"] != b || !b.released || b.policy != nil || b.transport != nil || b.source != nil || len(b.targets) != 3 {
		t.Errorf("u7 not released in place: %+v", b)
	}
}

// TestJSONMembersRawSameAsSet: members set pre-encoded (setRaw, not
// boxed) are written, read (get, has) and turned into an obj as the
// same json.RawMessage set with set: a few and more members than the
// array holds, raw members replaced by boxed ones and the reverse, an
// empty raw value.
func TestJSONMembersRawSameAsSet(t *testing.T) {
	for _, n := range []int{1, 3, 8, 9, 20} {
		var raw, boxed jsonMembers
		for i := n - 1; i >= 0; i-- {
			k := fmt.Sprintf("k%02d", i)
			v := []byte(fmt.Sprintf(`{"i":%d,"s":"<&>"}`, i))
			switch i % 3 {
			case 0:
				raw.setRaw(k, v)
			case 1:
				raw.setRaw(k, []byte(`"replaced"`))
				raw.set(k, json.RawMessage(v))
			default:
				raw.set(k, "replaced")
				raw.setRaw(k, v)
			}
			boxed.set(k, json.RawMessage(v))
		}
		raw.setRaw("empty", nil)
		boxed.set("empty", json.RawMessage(nil))
		if got, want := string(raw.appendTo(nil)), string(boxed.appendTo(nil)); got != want {
			t.Errorf("%d members:\n got %s\nwant %s", n, got, want)
		}
		if got, want := string(encode(nil, raw.obj())), string(encode(nil, boxed.obj())); got != want {
			t.Errorf("%d members, obj:\n got %s\nwant %s", n, got, want)
		}
		v, ok := raw.get("k00")
		if r, isRaw := v.(json.RawMessage); !ok || !isRaw || string(r) != `{"i":0,"s":"<&>"}` {
			t.Errorf("%d members: get k00 %v %v", n, v, ok)
		}
		if !raw.has("k00") || raw.has("k99") || raw.len() != n+1 {
			t.Errorf("%d members: has k00 %v, k99 %v, len %d", n, raw.has("k00"), raw.has("k99"), raw.len())
		}
	}
}
