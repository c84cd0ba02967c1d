package kdladapter

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
)

// serversOf adapts src and returns its servers' listen addresses by
// server name.
func serversOf(t *testing.T, src string) map[string][]string {
	t.Helper()
	out, _ := mustAdapt(t, src)
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for name, s := range cfg.Apps.HTTP.Servers {
		got[name] = s.Listen
	}
	return got
}

// twoListeners is a config of two listeners (bodies a and b) and a route.
func twoListeners(a, b string) string {
	return fmt.Sprintf(`system { }
listeners {
    listener "web" { address "127.0.0.1:18080"; %s }
    listener "alt" { address "127.0.0.1:18081"; %s }
}
routes {
    route "r" { matches { path-prefix "/"; }; upstream "u"; }
    route "s" { matches { path-prefix "/s"; }; upstream "u"; }
}
upstreams { upstream "u" { target "127.0.0.1:9"; }; }
`, a, b)
}

func TestMergeServersIdenticalListeners(t *testing.T) {
	got := serversOf(t, twoListeners("", ""))
	want := map[string][]string{"web": {"127.0.0.1:18080", "127.0.0.1:18081"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("servers = %v, want %v (the first listener's name, both addresses)", got, want)
	}
}

func TestMergeServersThreeListenersTwoKinds(t *testing.T) {
	got := serversOf(t, `system { }
listeners {
    listener "a" { address "127.0.0.1:18080"; }
    listener "b" { address "127.0.0.1:18081"; request-timeout-secs 3; }
    listener "c" { address "127.0.0.1:18082"; }
    listener "d" { address "127.0.0.1:18083"; request-timeout-secs 3; }
}
routes { route "r" { matches { path-prefix "/"; }; upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:9"; }; }
`)
	want := map[string][]string{"a": {"127.0.0.1:18080", "127.0.0.1:18082"}, "b": {"127.0.0.1:18081", "127.0.0.1:18083"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
}

func TestMergeServersDifferentSettingsStayApart(t *testing.T) {
	for name, bodies := range map[string][2]string{
		"timeout":       {"", "request-timeout-secs 3"},
		"default-route": {"", `default-route "r"`},
		"protocol":      {"", `protocol "h2"`},
		"keepalive":     {"keepalive-timeout-secs 5", "keepalive-timeout-secs 6"},
	} {
		t.Run(name, func(t *testing.T) {
			got := serversOf(t, twoListeners(bodies[0], bodies[1]))
			names := make([]string, 0, len(got))
			for n := range got {
				names = append(names, n)
			}
			sort.Strings(names)
			if !slices.Equal(names, []string{"alt", "web"}) {
				t.Errorf("servers = %v, want web and alt apart", got)
			}
		})
	}
}

func TestMergeServersNeverTLS(t *testing.T) {
	tls := `tls { cert-file "c.pem"; key-file "k.pem"; }`
	got := serversOf(t, twoListeners(tls, tls))
	if len(got) != 2 {
		t.Errorf("servers = %v, want the two TLS listeners apart", got)
	}
}

func TestSameJSON(t *testing.T) {
	r := &builtRoute{id: "r", handle: []byte(`{}`)}
	for _, c := range []struct {
		x, y any
		same bool
	}{
		{obj{"a": 1}, obj{"a": 1}, true},
		{obj{"a": 1}, obj{"a": 2}, false},
		{obj{"a": 1}, obj{"b": 1}, false},
		{obj{"a": 1}, obj{"a": 1, "b": 2}, false},
		{[]obj{{"a": "x"}}, []obj{{"a": "x"}}, true},
		{[]any{routeJSON{r: r}}, []any{routeJSON{r: r}}, true},
		{[]any{routeJSON{r: r}}, []any{routeJSON{r: r, noMatch: true}}, false},
		{[]any{routeJSON{r: r}}, []any{routeJSON{r: &builtRoute{id: "r", handle: []byte(`{}`)}}}, false},
		{[]string{"a"}, []string{"a"}, true},
		{[]string{"a"}, []string{"b"}, false},
		{json.RawMessage(`{}`), json.RawMessage(`{}`), true},
		{json.RawMessage(`{}`), json.RawMessage(`[]`), false},
		{"x", "x", true},
		{int64(1), 1, false},
		{true, true, true},
		{nil, nil, true},
		{nil, 0, false},
		{[]int{1}, []int{1}, true},
		{[]int{1}, []int{2}, false},
		{[]int64{1}, []int64{1}, true},
		{[]int64{1}, []int{1}, false},
		{map[string]string{"a": "b"}, map[string]string{"a": "b"}, true},
		{map[string]string{"a": "b"}, map[string]string{"a": "c"}, false},
		{map[string][]string{"a": {"b"}}, map[string][]string{"a": {"b"}}, true},
		{map[string][]string{"a": {"b"}}, map[string][]string{"a": {"b", "c"}}, false},
		{[]json.RawMessage{json.RawMessage(`1`)}, []json.RawMessage{json.RawMessage(`1`)}, true},
		{[]json.RawMessage{json.RawMessage(`1`)}, []json.RawMessage{json.RawMessage(`2`)}, false},
		{[]uint{1}, []uint{1}, false}, // not a type the encoder writes: never merged
		{obj{"a": 1}, "x", false},
	} {
		if got := sameJSON(c.x, c.y); got != c.same {
			t.Errorf("sameJSON(%#v, %#v) = %v, want %v", c.x, c.y, got, c.same)
		}
	}
}

func TestMergeServersLeavesMultiAddressServers(t *testing.T) {
	servers := obj{
		"a": obj{"listen": []string{"x:1", "x:2"}, "routes": []any{}},
		"b": obj{"listen": []string{"x:3"}, "routes": []any{}},
		"c": obj{"routes": []any{}},
		"d": obj{"listen": []string{"x:4"}, "routes": []any{}},
	}
	mergeServers(servers, []string{"a", "b", "c", "d", "missing"})
	if len(servers) != 3 || fmt.Sprint(servers["b"].(obj)["listen"]) != "[x:3 x:4]" {
		t.Errorf("servers = %v", servers)
	}
}
