package routeguard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	_ "github.com/sentinel-proxy/sentinel/modules/adaptive"
)

// proxyJSON is a reverse_proxy to addr with transport protocol and
// selection policy.
func proxyJSON(addr, protocol, policy string) json.RawMessage {
	return fmt.Appendf(nil, `{"handler":"reverse_proxy","upstreams":[{"dial":%q}],"transport":{"protocol":%q,"dial_timeout":"2s"},`+
		`"load_balancing":{"retries":1,"retry_match":[{"method":["GET","HEAD"]}],"selection_policy":{"policy":%q}}}`, addr, protocol, policy)
}

// proxyConfig is a config whose routes (path /<id>) have guards taking
// their handlers from the sentinel_routes app, the route ids and handlers
// being those of routes, plus route "inline" whose guard holds its
// handler inline.
func proxyConfig(listen string, routes map[string]json.RawMessage, inline json.RawMessage) []byte {
	var ids, server, app []string
	for id, h := range routes {
		ids = append(ids, fmt.Sprintf("%q", id))
		server = append(server, fmt.Sprintf(`{"match":[{"path":["/%s"]}],"handle":[{"handler":"sentinel_route","route":%q,"handle_in_app":true}]}`, id, id))
		app = append(app, fmt.Sprintf(`%q:[%s]`, id, h))
	}
	if inline != nil {
		ids = append(ids, `"inline"`)
		server = append(server, fmt.Sprintf(`{"match":[{"path":["/inline"]}],"handle":[{"handler":"sentinel_route","route":"inline","handle":[%s]}]}`, inline))
	}
	return fmt.Appendf(nil, `{"admin":{"disabled":true},"apps":{"sentinel":{"routes":[%s]},"sentinel_routes":{"routes":{%s}},`+
		`"http":{"servers":{"s":{"listen":[%q],"automatic_https":{"disable":true},"routes":[%s]}}}}}`,
		strings.Join(ids, ","), strings.Join(app, ","), listen, strings.Join(server, ","))
}

// TestProxiesShareModules: the reverse proxies of a config's guards share
// one Sentinel transport and one set of retry matchers when their JSON is
// the same, and each has its own selection policy; Caddy's http transport
// is not shared; a guard with an inline handle shares nothing. Each proxy
// serves its route, in a running config.
func TestProxiesShareModules(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "backend "+r.URL.Path)
	}))
	defer backend.Close()
	addr := backend.Listener.Addr().String()
	listen := testutil.FreeAddr(t)
	cfg := proxyConfig(listen, map[string]json.RawMessage{
		"a": proxyJSON(addr, "sentinel", "round_robin"),
		"b": proxyJSON(addr, "sentinel", "first"),
		"c": proxyJSON(addr, "http", "first"),
		"d": proxyJSON(addr, "http", "first"),
	}, proxyJSON(addr, "sentinel", "first"))
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = caddy.Stop() }()

	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatal(err)
	}
	proxies := map[string]*reverseproxy.Handler{}
	for _, r := range app.(*caddyhttp.App).Servers["s"].Routes {
		g := r.Handlers[0].(*Guard)
		h, ok := g.handlers[0].(*reverseproxy.Handler)
		if !ok {
			t.Fatalf("route %s: loaded %T, want *reverseproxy.Handler", g.Route, g.handlers[0])
		}
		proxies[g.Route] = h
	}
	a, b := proxies["a"], proxies["b"]
	if a.Transport != b.Transport {
		t.Error("two proxies with the same sentinel transport have one each")
	}
	if matchersOf(a) != matchersOf(b) || matchersOf(a) == 0 {
		t.Error("two proxies with the same retry_match have their own matchers")
	}
	if reflect.TypeOf(a.LoadBalancing.SelectionPolicy) == reflect.TypeOf(b.LoadBalancing.SelectionPolicy) {
		t.Errorf("selection policies %T and %T", a.LoadBalancing.SelectionPolicy, b.LoadBalancing.SelectionPolicy)
	}
	if proxies["c"].Transport == proxies["d"].Transport {
		t.Error("Caddy's http transport was shared")
	}
	if e := proxies["inline"]; e.Transport == a.Transport || matchersOf(e) == matchersOf(a) {
		t.Error("a guard with an inline handle shares the proxy's modules")
	}

	for _, id := range []string{"a", "b", "c", "d", "inline"} {
		res, err := http.Get("http://" + listen + "/" + id)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "backend /"+id {
			t.Errorf("route %s: %d %q", id, res.StatusCode, body)
		}
	}
}

// matchersOf identifies the retry matchers of h (the address of the first
// set's array).
func matchersOf(h *reverseproxy.Handler) uintptr {
	if len(h.LoadBalancing.RetryMatch) == 0 {
		return 0
	}
	return reflect.ValueOf(h.LoadBalancing.RetryMatch[0]).Pointer()
}

// TestProxyErrorsAsCaddys: a bad reverse_proxy fails a config the same
// way (the same message) taken from the app as held inline (loaded by
// Caddy's reverse_proxy), never naming the loader.
func TestProxyErrorsAsCaddys(t *testing.T) {
	validate := func(routes map[string]json.RawMessage, inline json.RawMessage) error {
		var c caddy.Config
		if err := json.Unmarshal(proxyConfig("127.0.0.1:0", routes, inline), &c); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&c)
	}
	for _, raw := range []string{
		`{"handler":"reverse_proxy","bogus":1}`,
		`{"handler":"reverse_proxy","transport":{"protocol":"sentinel","bogus":1}}`,
		`{"handler":"reverse_proxy","transport":{"protocol":"nope"}}`,
		`{"handler":"reverse_proxy","load_balancing":{"selection_policy":{"policy":"nope"}}}`,
		`{"handler":"reverse_proxy","load_balancing":{"selection_policy":{"policy":"first","x":1}}}`,
		`{"handler":"reverse_proxy","load_balancing":{"retry_match":[{"nope":{}}]}}`,
		`{"handler":"reverse_proxy","dynamic_upstreams":{"source":"nope"}}`,
		`{"handler":"reverse_proxy","dynamic_upstreams":{"source":"sentinel"}}`,
		`{"handler":"reverse_proxy","trusted_proxies":["not an address"]}`,
	} {
		want := validate(nil, json.RawMessage(raw))
		got := validate(map[string]json.RawMessage{"inline": json.RawMessage(raw)}, nil)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%s:\n got %v\nwant %v", raw, got, want)
		}
		if got != nil && strings.Contains(got.Error(), proxyLoaderID) {
			t.Errorf("%s: the error names the loader: %v", raw, got)
		}
	}
	// A module without its name: the error says which, without quoting
	// the object (Caddy's does).
	for raw, want := range map[string]string{
		`{"handler":"reverse_proxy","transport":{"dial_timeout":"2s"}}`:             "loading transport: module name not specified with key 'protocol'",
		`{"handler":"reverse_proxy","load_balancing":{"selection_policy":{"x":1}}}`: "loading load balancing selection policy: module name not specified with key 'policy'",
		`{"handler":"reverse_proxy","dynamic_upstreams":{"upstream":"u"}}`:          "loading upstream source module: module name not specified with key 'source'",
	} {
		err := validate(map[string]json.RawMessage{"a": json.RawMessage(raw)}, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}

// TestProxyModuleInfo: the proxy's logger is reverse_proxy's (its module
// information), and the loader is a proxy.
func TestProxyModuleInfo(t *testing.T) {
	if id := (&proxy{}).CaddyModule().ID; id != "http.handlers.reverse_proxy" {
		t.Errorf("proxy module ID %q", id)
	}
	if _, ok := (proxyLoader{}).CaddyModule().New().(*proxy); !ok {
		t.Error("the loader does not make a proxy")
	}
	// Sentinel's transport is shared; reverse_proxy would take buffer
	// sizes from a BufferedTransport it loads itself.
	m, err := caddy.GetModule("http.reverse_proxy.transport.sentinel")
	if err != nil {
		t.Fatal(err)
	}
	if _, buffered := m.New().(reverseproxy.BufferedTransport); buffered {
		t.Error("the sentinel transport is a BufferedTransport: it cannot be shared")
	}
}

// TestProxyLoggerName: a proxy taken from the app logs as Caddy's
// reverse_proxy does (logger http.handlers.reverse_proxy, which log
// configs include or exclude by name), not as the guard or the loader.
func TestProxyLoggerName(t *testing.T) {
	file := filepath.Join(t.TempDir(), "proxy.log")
	cfg := proxyConfig("127.0.0.1:0", map[string]json.RawMessage{
		// Unlimited buffering: reverse_proxy's Provision warns.
		"a": json.RawMessage(`{"handler":"reverse_proxy","request_buffers":-1,"transport":{"protocol":"sentinel"}}`),
	}, nil)
	cfg = append(cfg[:len(cfg)-1], fmt.Sprintf(`,"logging":{"logs":{"default":{"exclude":["http.handlers.reverse_proxy"]},`+
		`"proxy":{"writer":{"output":"file","filename":%q},"include":["http.handlers.reverse_proxy"]}}}}`, file)...)
	var c caddy.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatal(err)
	}
	logged, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), `"logger":"http.handlers.reverse_proxy"`) || !strings.Contains(string(logged), "UNLIMITED BUFFERING") {
		t.Errorf("the proxy's log: %s", logged)
	}
}
