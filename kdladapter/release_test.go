package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestUpstreamMappingsReleased: once the routes are mapped, no upstream
// keeps its whole mapping (policy, transport, health checks…), only the
// sentinel app's encoded part (issue 13.8: 100,000 upstreams held 200 MB
// of them until the end of the adaptation).
func TestUpstreamMappingsReleased(t *testing.T) {
	d := &diag{}
	l := &loader{d: d, lookupEnv: noEnv, files: OSFiles{}, max: MaxConfigBytes}
	nodes := l.loadMain("gen.kdl", generatedConfig(200))
	a := &adapter{d: d, filename: "gen.kdl"}
	a.build(nodes)
	if err := d.err(); err != nil {
		t.Fatal(err)
	}
	if len(a.proxies) != 200 {
		t.Fatalf("%d upstreams mapped, want 200", len(a.proxies))
	}
	for id, b := range a.proxies {
		if !b.released || b.transport != nil || b.policy != nil || b.source != nil || len(b.targets) == 0 {
			t.Fatalf("upstream %q: mapping kept after its routes (released %v)", id, b.released)
		}
	}
}

// TestSharedUpstreamReleasedAfterLastUse: an upstream used by two routes
// and a shadow is mapped once, every proxy to it is complete, and its
// problems are reported once.
func TestSharedUpstreamReleasedAfterLastUse(t *testing.T) {
	out, warns := mustAdapt(t, minimal+`routes {
    route "a" { priority 3; matches { path-prefix "/a"; }; upstream "shared"; }
    route "b" {
        priority 2
        matches { path-prefix "/b"; }
        upstream "other"
        shadow { upstream "shared"; }
    }
    route "c" { priority 1; matches { path-prefix "/c"; }; upstream "shared"; }
}
upstreams {
    upstream "shared" {
        target "zone=z1,127.0.0.1:9001"
        load-balancing "least_connections"
        timeouts { connect-secs 3; }
        health-check { type "http" { path "/h"; }; }
    }
    upstream "other" { target "127.0.0.1:9002"; }
}
`)
	s := string(out)
	// Two routes and the shadow proxy to it, each with its transport and
	// policy.
	if n := strings.Count(s, `"upstream":"shared"`); n < 3 {
		t.Errorf("%d references to upstream shared, want ≥ 3:\n%s", n, s)
	}
	if n := strings.Count(s, `"dial_timeout":"3s"`); n != 3 {
		t.Errorf("%d proxies to shared with its transport, want 3:\n%s", n, s)
	}
	var cfg struct {
		Apps struct {
			Sentinel struct {
				Upstreams []json.RawMessage `json:"upstreams"`
			} `json:"sentinel"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps.Sentinel.Upstreams) != 2 || !strings.Contains(string(cfg.Apps.Sentinel.Upstreams[1]), `"health_check":{`) {
		t.Errorf("sentinel app upstreams: %s", cfg.Apps.Sentinel.Upstreams)
	}
	if w := warningsText(warns); strings.Count(w, "target zones are only used") != 1 {
		t.Errorf("a problem of the shared upstream reported more than once:\n%s", w)
	}
}

// TestReleasedUpstreamMappedAgain: an upstream used again after its
// counted uses (which the count should rule out) is mapped again, fully,
// without reporting its problems twice.
func TestReleasedUpstreamMappedAgain(t *testing.T) {
	d := &diag{}
	l := &loader{d: d, lookupEnv: noEnv, files: OSFiles{}, max: MaxConfigBytes}
	nodes := l.loadMain("t.kdl", []byte(minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:9001"; load-balancing "nope"; }; }
`))
	a := &adapter{d: d, filename: "t.kdl"}
	a.build(nodes)
	before := len(d.errs) + len(d.warns)
	if before == 0 {
		t.Fatal("no finding for the bad load-balancing")
	}
	b := a.base(a.upstreams["u"])
	if b.released || b.transport == nil || len(b.targets) != 1 {
		t.Errorf("mapped again: %+v", b)
	}
	if after := len(d.errs) + len(d.warns); after != before {
		t.Errorf("%d findings after mapping again, want %d", after, before)
	}
}
