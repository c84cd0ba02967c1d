package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
	"github.com/sentinel-proxy/sentinel/modules/agents"
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

// TestLoadBalancingTunablesTyped: every setting declared for a
// load-balancing algorithm reaches its own field of the adaptive
// package's policy struct (the output has one key per setting, plus
// policy and upstream), and the output decodes into that struct.
func TestLoadBalancingTunablesTyped(t *testing.T) {
	structs := map[string]func() any{
		"peak_ewma": func() any { return new(adaptive.PeakEWMA) }, "adaptive": func() any { return new(adaptive.Adaptive) },
		"p2c": func() any { return new(adaptive.P2C) }, "weighted_least_connections": func() any { return new(adaptive.WeightedLeastConnections) },
		"consistent_hash": func() any { return new(adaptive.ConsistentHash) }, "maglev": func() any { return new(adaptive.Maglev) },
		"locality_aware": func() any { return new(adaptive.LocalityAware) }, "deterministic_subset": func() any { return new(adaptive.DeterministicSubset) },
		"sticky": func() any { return new(reverseproxy.CookieHashSelection) },
	}
	if len(structs) != len(lbPolicyKeys) {
		t.Fatalf("lbPolicyKeys has %d algorithms, the test knows %d", len(lbPolicyKeys), len(structs))
	}
	// Each setting gets the first of these values it accepts.
	candidates := []string{`"2s"`, `3`, `#true`, `"round_robin"`}
	for algo, k := range lbPolicyKeys {
		var lines []string
		honoured := 0
		for _, c := range k.Children {
			if c.Status != Honoured {
				continue
			}
			honoured++
			ok := false
			for _, v := range candidates {
				if _, _, err := adaptString(t, lbConfig(algo, c.Name+" "+v)); err == nil {
					lines = append(lines, c.Name+" "+v)
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("%s: no value accepted for %s", algo, c.Name)
			}
		}
		out, _ := mustAdapt(t, lbConfig(algo, strings.Join(lines, "; ")))
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Routes []struct {
							Handle []struct { // the guard, its handle folded in
								Handle []struct {
									LoadBalancing struct {
										SelectionPolicy map[string]json.RawMessage `json:"selection_policy"`
									} `json:"load_balancing"`
								} `json:"handle"`
							} `json:"handle"`
						} `json:"routes"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		policy := cfg.Apps.HTTP.Servers["http"].Routes[0].Handle[0].Handle[0].LoadBalancing.SelectionPolicy
		extra := 2 // policy, upstream
		if !weightsFromRegistry[algo] {
			extra = 1
		}
		if len(policy) != honoured+extra {
			t.Errorf("%s: %d settings gave %d keys: %v", algo, honoured, len(policy), policy)
		}
		if string(policy["policy"]) != `"`+lbCaddy[algo]+`"` || weightsFromRegistry[algo] && string(policy["upstream"]) != `"u"` {
			t.Errorf("%s: policy %s upstream %s", algo, policy["policy"], policy["upstream"])
		}
		raw, _ := json.Marshal(policy)
		if err := json.Unmarshal(raw, structs[algo]()); err != nil {
			t.Errorf("%s: %s does not decode into its policy struct: %v", algo, raw, err)
		}
		for key, v := range policy {
			if string(v) == "2000000000" {
				t.Errorf("%s: %s is written in nanoseconds, not as a duration string", algo, key)
			}
		}
	}
}

func lbConfig(algo, settings string) string {
	return minimal + `routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; load-balancing "` + algo + `" { ` + settings + `; }; }; }`
}

// TestTypedBlockRepeatedSetting: a repeated setting of a typed block is
// read once, the first time, as the walker's warning says.
func TestTypedBlockRepeatedSetting(t *testing.T) {
	out, warns := mustAdapt(t, lbConfig("maglev", `table-size 7; table-size 9`))
	if !strings.Contains(string(out), `"table_size":7`) || !strings.Contains(warningsText(warns), "repeated; the first one") {
		t.Errorf("out %s warnings %s", out, warningsText(warns))
	}
}

// TestJSONKeyOf: a field declaration finds its JSON key from the struct
// tag, and a declaration pointing at a field without one is refused.
func TestJSONKeyOf(t *testing.T) {
	if k := jsonKeyOf(func(p *adaptive.Maglev) any { return &p.TableSize }); k != "table_size" {
		t.Errorf("key %q", k)
	}
	type noTag struct{ A, B int }
	defer func() {
		if recover() == nil {
			t.Error("no panic for a field without a JSON tag")
		}
	}()
	jsonKeyOf(func(p *noTag) any { return &p.B })
}

// TestStickyTyped: sticky's defaults (cookie SERVERID, one hour, round
// robin fallback), its settings, and its warned settings.
func TestStickyTyped(t *testing.T) {
	out, warns := mustAdapt(t, lbConfig("sticky", `cookie-path "/x"`))
	if want := `"selection_policy":{"fallback":{"policy":"round_robin"},"max_age":"1h0m0s","name":"SERVERID","policy":"cookie"}`; !strings.Contains(string(out), want) {
		t.Errorf("missing %s in %s", want, out)
	}
	if w := warningsText(warns); !strings.Contains(w, "upstreams.upstream.load-balancing.sticky.cookie-path") || !strings.Contains(w, "Path=/") {
		t.Errorf("warnings: %s", w)
	}
	if _, _, err := adaptString(t, lbConfig("sticky", `fallback "adaptive"`)); err == nil || !strings.Contains(err.Error(), `fallback "adaptive" of load-balancing "sticky": expected round_robin`) {
		t.Errorf("fallback adaptive: %v", err)
	}
}

// TestAgentFilterTyped: every key of a filter of type "agent" reaches its
// field of agents.Filter (the handler's own type), and the output decodes
// into it.
func TestAgentFilterTyped(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`agents { agent "waf" { type "custom"; unix-socket "/run/waf.sock"; }; }
filters { filter "f" { type "agent"; agent "waf"; phase "request"; timeout-ms 1500; failure-mode "fail-closed"; inspect-body #true; max-body-bytes "1KiB"; body-mode "hybrid:4096"; }; }
routes { route "a" { builtin-handler "health"; filters "f"; }; }`)
	s := string(out)
	i := strings.Index(s, `"filters":[`)
	if i < 0 {
		t.Fatalf("no agent filters in %s", s)
	}
	var filters []agents.Filter
	dec := json.NewDecoder(strings.NewReader(s[i+len(`"filters":`):]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&filters); err != nil {
		t.Fatal(err)
	}
	want := agents.Filter{Agent: "waf", Phase: "request", Timeout: caddy.Duration(1500 * time.Millisecond), FailureMode: "closed", InspectBody: true, MaxBodyBytes: 1024, BodyMode: "hybrid:4096"}
	if len(filters) != 1 || filters[0].Agent != want.Agent || filters[0].Phase != want.Phase || filters[0].Timeout != want.Timeout ||
		filters[0].FailureMode != want.FailureMode || !filters[0].InspectBody || filters[0].MaxBodyBytes != want.MaxBodyBytes || filters[0].BodyMode != want.BodyMode {
		t.Errorf("filters %+v, want %+v", filters, want)
	}
	if !strings.Contains(s, `"timeout":"1.5s"`) {
		t.Errorf("timeout not a duration string: %s", s)
	}
}

// TestSplitObject: members are split at the top level only, strings
// (with escaped quotes, commas, braces) are skipped, escaped keys decoded.
func TestSplitObject(t *testing.T) {
	got := splitObject([]byte(`{"a":"x,\"}]","b\u003c":{"c":[1,{"d":2}]},"e":3,"f":[]}`))
	want := map[string]string{"a": `"x,\"}]"`, "b<": `{"c":[1,{"d":2}]}`, "e": "3", "f": "[]"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if r, _ := got[k].(json.RawMessage); string(r) != v {
			t.Errorf("%s: %s, want %s", k, r, v)
		}
	}
	if len(splitObject([]byte(`{}`))) != 0 {
		t.Error("empty object has members")
	}
}
