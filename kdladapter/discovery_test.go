package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/modules/discovery"
)

// TestDiscoveryMapping maps each kind onto its sentinel.discovery module:
// the JSON decodes strictly into the module's struct, and an upstream
// with a discovery needs no declared target.
func TestDiscoveryMapping(t *testing.T) {
	app := sentinelAppOf(t, minimal+`
routes { route "r" { upstream "dns"; }; }
upstreams {
    upstream "dns" { discovery "dns" { hostname "api.internal"; port 8080; refresh-interval 10; resolvers "10.0.0.53" "10.0.0.54:5353"; timeout-secs 2; }; }
    upstream "srv" { discovery "DNS_SRV" { service "_http._tcp.api.internal"; refresh-interval 5; }; }
    upstream "file" { target "127.0.0.1:9000"; discovery "file" { path "/etc/sentinel/targets"; watch-interval 2; }; }
    upstream "consul" { discovery "consul" { address "http://consul:8500"; service "web"; datacenter "dc2"; only-passing #false; tag "prod" "v2"; token "{env.CONSUL_TOKEN}"; refresh-interval 60; }; }
    upstream "kube" { discovery "kubernetes" { namespace "apps"; service "api"; port-name "http"; kubeconfig "/etc/kube/config"; refresh-interval 120; }; }
    upstream "static" { discovery "static" { backends "127.0.0.1:9001" "[::1]:9002"; }; }
}
`)
	got := map[string]string{}
	for _, u := range app.Upstreams {
		got[u.ID] = string(u.Discovery)
	}
	want := map[string]string{
		"dns":    `{"hostname":"api.internal","kind":"dns","port":8080,"refresh_interval":"10s","resolvers":["10.0.0.53","10.0.0.54:5353"],"timeout":"2s"}`,
		"srv":    `{"kind":"dns_srv","refresh_interval":"5s","service":"_http._tcp.api.internal"}`,
		"file":   `{"kind":"file","path":"/etc/sentinel/targets","watch_interval":"2s"}`,
		"consul": `{"address":"http://consul:8500","datacenter":"dc2","kind":"consul","only_passing":false,"refresh_interval":"1m0s","service":"web","tags":["prod","v2"],"token":"{env.CONSUL_TOKEN}"}`,
		"kube":   `{"kind":"kubernetes","kubeconfig":"/etc/kube/config","namespace":"apps","port_name":"http","refresh_interval":"2m0s","service":"api"}`,
		"static": `{"kind":"static","targets":[{"address":"127.0.0.1:9001"},{"address":"[::1]:9002"}]}`,
	}
	for id, w := range want {
		if normJSON(t, got[id]) != normJSON(t, w) {
			t.Errorf("%s:\n got  %s\n want %s", id, got[id], w)
		}
	}
	// Each decodes strictly into its module.
	mods := map[string]any{"dns": &discovery.DNS{}, "srv": &discovery.DNSSRV{}, "file": &discovery.File{},
		"consul": &discovery.Consul{}, "kube": &discovery.Kubernetes{}, "static": &discovery.Static{}}
	for id, m := range mods {
		var obj map[string]json.RawMessage
		_ = json.Unmarshal([]byte(got[id]), &obj)
		delete(obj, "kind")
		raw, _ := json.Marshal(obj)
		if err := strictDecode(raw, m); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		if _, err := caddy.GetModule("sentinel.discovery." + strings.Trim(string(mustKind(t, got[id])), `"`)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	for _, u := range app.Upstreams {
		if u.ID == "file" && len(u.Targets) != 1 {
			t.Errorf("declared targets next to a discovery: %+v", u.Targets)
		}
	}
}

func mustKind(t *testing.T, s string) json.RawMessage {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		t.Fatal(err)
	}
	return obj["kind"]
}

func normJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return "invalid: " + s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDiscoveryErrors: bad discovery blocks fail at file:line:col with
// what is wrong.
func TestDiscoveryErrors(t *testing.T) {
	head := minimal + "routes { route \"a\" { upstream \"u\"; } }\n"
	for _, tc := range []struct{ src, want string }{
		{"upstreams {\n upstream \"u\" { discovery \"etcd\" { }; }\n}", `test.kdl:10:27: upstream "u": unknown discovery "etcd"`},
		{"upstreams {\n upstream \"u\" { discovery \"dsn\" { }; }\n}", `(did you mean "dns"?)`},
		{"upstreams {\n upstream \"u\" { discovery \"dns\" { port 80; }; }\n}", `test.kdl:10:17: upstream "u": discovery "dns" needs hostname`},
		{"upstreams {\n upstream \"u\" { discovery \"dns\" { hostnme \"x\"; port 80; }; }\n}", `test.kdl:10:35: unknown setting "hostnme" in upstreams.upstream.discovery.dns (did you mean "hostname"?)`},
		{"upstreams {\n upstream \"u\" { discovery \"dns\" { hostname \"x\"; port 0; }; }\n}", `test.kdl:10:54: port must be between 1 and 65535, not 0`},
		{"upstreams {\n upstream \"u\" { discovery \"static\" { backends \"nope\"; }; }\n}", `test.kdl:10:47: backends: address "nope": must be host:port`},
		{"upstreams {\n upstream \"u\" { discovery \"static\" { backends; }; }\n}", `backends needs at least one host:port`},
		{"upstreams {\n upstream \"u\" { discovery \"static\" { backends { b \"x:1\"; }; }; }\n}", `backends takes its addresses as arguments`},
		{"upstreams {\n upstream \"u\" { discovery \"static\" { backends 1; }; }\n}", `backends takes host:port strings, not number 1`},
		{"upstreams {\n upstream \"u\" { discovery \"file\" { watch-interval 5; }; }\n}", `discovery "file" needs path`},
		{"upstreams {\n upstream \"u\" { discovery \"consul\" { }; }\n}", `discovery "consul" needs service`},
		{"upstreams {\n upstream \"u\" { discovery \"kubernetes\" { namespace \"x\"; }; }\n}", `discovery "kubernetes" needs service`},
		{"upstreams {\n upstream \"u\" { discovery \"dns-srv\" { refresh-interval \"x\"; }; }\n}", `needs service`},
		{"upstreams {\n upstream \"u\" { discovery 3 { }; }\n}", `discovery takes a string`},
		{"upstreams {\n upstream \"u\" { }\n}", `upstream "u" has no target: add target "host:port" (or a discovery block)`},
	} {
		_, _, err := adaptString(t, head+tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
}

// TestDiscoveryTokenNotEchoed: a Consul token from ${VAR} never shows in
// a message.
func TestDiscoveryTokenNotEchoed(t *testing.T) {
	src := minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams {\n upstream \"u\" { discovery \"consul\" { service \"web\"; token \"${TOKEN}\"; tken \"${TOKEN}\"; }; }\n}"
	_, _, err := Adapt("test.kdl", []byte(src), envOf("TOKEN", "super-secret-token-123"), OSFiles{})
	if err == nil || strings.Contains(err.Error(), "super-secret-token-123") {
		t.Errorf("%v", err)
	}
}
