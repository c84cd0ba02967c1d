package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
)

// nsBase is a config with a shared listener and a global upstream;
// tests append namespaces.
const nsBase = `
system { }
listeners { listener "http" { address "127.0.0.1:18080"; }; }
upstreams { upstream "auth" { target "127.0.0.1:9001"; }; }
routes { route "login" { matches { path-prefix "/login"; }; upstream "auth"; }; }
`

// adaptedSentinel decodes the sentinel app and the servers of an output.
func adaptedSentinel(t *testing.T, out []byte) (routes []string, upstreams []string, servers map[string]any) {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]any `json:"servers"`
			} `json:"http"`
			Sentinel struct {
				Routes    []string `json:"routes"`
				Upstreams []struct {
					ID string `json:"id"`
				} `json:"upstreams"`
			} `json:"sentinel"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, u := range cfg.Apps.Sentinel.Upstreams {
		upstreams = append(upstreams, u.ID)
	}
	return cfg.Apps.Sentinel.Routes, upstreams, cfg.Apps.HTTP.Servers
}

func TestNamespacesQualifyAndResolve(t *testing.T) {
	out, _ := mustAdapt(t, nsBase+`
namespace "team-a" {
    upstreams { upstream "api" { target "127.0.0.1:9002"; }; upstream "auth" { target "127.0.0.1:9005"; }; }
    filters { filter "hdr" { type "rate-limit"; max-rps 10; }; }
    routes {
        route "web" { matches { path-prefix "/"; }; upstream "api"; filters "hdr"; }
        route "own-auth" { matches { path-prefix "/auth"; }; upstream "auth"; }
    }
    exports { upstreams "api"; filters "hdr"; }
}
namespaces {
    namespace "team-b" {
        routes {
            route "uses-export" { matches { path-prefix "/x"; }; upstream "api"; filters "team-a:hdr"; }
            route "uses-global" { matches { path-prefix "/l"; }; upstream "auth"; }
        }
        services {
            service "billing" {
                upstreams { upstream "db" { target "127.0.0.1:9004"; }; }
                routes { route "pay" { matches { path-prefix "/pay"; }; upstream "db"; }; }
            }
        }
    }
}
`)
	routes, ups, _ := adaptedSentinel(t, out)
	want := "login,team-a:own-auth,team-a:web,team-b:billing:pay,team-b:uses-export,team-b:uses-global"
	if strings.Join(routes, ",") != want {
		t.Errorf("routes %v, want %s", routes, want)
	}
	if strings.Join(ups, ",") != "auth,team-a:api,team-a:auth,team-b:billing:db" {
		t.Errorf("upstreams %v", ups)
	}
	s := string(out)
	for _, frag := range []string{
		// team-a's own "auth" shadows the global one in team-a.
		`"route":"team-a:own-auth"`,
	} {
		if !strings.Contains(s, frag) {
			t.Errorf("output lacks %s", frag)
		}
	}
}

func TestNamespaceListenerBinding(t *testing.T) {
	out, _ := mustAdapt(t, nsBase+`
listeners { listener "a-bound" { address "127.0.0.1:18083"; namespace "team-a"; default-route "web"; }; }
namespace "team-a" {
    listeners { listener "own" { address "127.0.0.1:18081"; }; }
    upstreams { upstream "api" { target "127.0.0.1:9002"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
}
namespace "team-b" {
    upstreams { upstream "api" { target "127.0.0.1:9003"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
    service "billing" {
        listener "bill" { address "127.0.0.1:18082"; }
        upstreams { upstream "db" { target "127.0.0.1:9004"; }; }
        routes { route "pay" { matches { path-prefix "/pay"; }; upstream "db"; }; }
    }
}
`)
	_, _, servers := adaptedSentinel(t, out)
	routeIDs := func(server string) string {
		srv, ok := servers[server].(map[string]any)
		if !ok {
			t.Fatalf("no server %q in %v", server, servers)
		}
		b, _ := json.Marshal(srv["routes"])
		var ids []string
		for _, id := range []string{"login", "team-a:web", "team-b:web", "team-b:billing:pay"} {
			if strings.Contains(string(b), `"route":"`+id+`"`) {
				ids = append(ids, id)
			}
		}
		return strings.Join(ids, ",")
	}
	for server, want := range map[string]string{
		"http":                "login,team-a:web,team-b:web,team-b:billing:pay",
		"team-a:own":          "team-a:web",
		"a-bound":             "team-a:web",
		"team-b:billing:bill": "team-b:billing:pay",
	} {
		if got := routeIDs(server); got != want {
			t.Errorf("server %s serves %s, want %s", server, got, want)
		}
	}
	// No namespace matcher without tenants.
	if strings.Contains(string(out), "sentinel_namespace") {
		t.Error("a listener without tenants got namespace matchers")
	}
}

func TestTenantsListenerJSON(t *testing.T) {
	out, _ := mustAdapt(t, `
system { }
listeners {
    listener "shared" {
        address "127.0.0.1:18080"
        default-route "fallback"
        tenants {
            namespaces "team-a"
            host "A.example.com" namespace="team-a"
            subdomain-of "t.example"
            header "X-Tenant"
            jwt { jwks-url "https://idp.example/jwks"; audience "s1" "s2"; issuer "https://idp.example"; claim "org"; header "X-Token"; cache-ttl-secs 60; }
            unidentified "global"
        }
    }
}
routes { route "fallback" { builtin-handler "not-found"; }; }
namespace "team-a" {
    upstreams { upstream "api" { target "127.0.0.1:9002"; }; }
    routes { route "web" { upstream "api"; }; route "p" { matches { path-prefix "/p"; }; upstream "api"; }; }
}
namespace "team-b" { }
`)
	s := string(out)
	for _, frag := range []string{
		`{"handle":[{"handler":"sentinel_tenant","header":"X-Tenant","hosts":{"a.example.com":"team-a"},"jwt":{"audience":["s1","s2"],"cache_ttl":60000000000,"claim":"org","header":"X-Token","issuer":"https://idp.example","jwks_url":"https://idp.example/jwks"},"namespaces":["team-a"],"subdomain_of":["t.example"],"unidentified":{"global":true}}]}`,
		`"match":[{"sentinel":{"path_prefix":["/p"]},"sentinel_namespace":"team-a"}]`,
		`"match":[{"sentinel_namespace":"team-a"}]`,
	} {
		if !strings.Contains(s, frag) {
			t.Errorf("output lacks %s\n%s", frag, s)
		}
	}
}

func TestNamespaceErrors(t *testing.T) {
	ns := func(body string) string { return nsBase + body }
	for _, tc := range []struct{ name, src, want string }{
		{"unresolved upstream", ns(`namespace "a" { routes { route "r" { upstream "nope"; }; }; }`),
			`test.kdl:6:47: route "a:r": upstream "nope" is not defined in namespace "a", its namespace's exports nor globally`},
		{"not exported", ns(`namespace "a" { upstreams { upstream "x" { target "127.0.0.1:1"; }; }; }
namespace "b" { routes { route "r" { upstream "a:x"; }; }; }`),
			`test.kdl:7:47: route "b:r": upstream "a:x" is not exported by namespace "a"`},
		{"no such namespace", ns(`namespace "a" { routes { route "r" { upstream "zz:x"; }; }; }`),
			`upstream "zz:x": there is no namespace "zz"`},
		{"not defined in the named namespace", ns(`namespace "a" { }
namespace "b" { routes { route "r" { upstream "a:x"; }; }; }`),
			`upstream "a:x" is not defined in namespace "a"`},
		{"own qualified missing", ns(`namespace "a" { routes { route "r" { upstream "a:x"; }; }; }`),
			`upstream "a:x" is not defined in namespace "a"`},
		{"ambiguous exports", ns(`namespace "a" { upstreams { upstream "x" { target "127.0.0.1:1"; }; }; exports { upstreams "x"; }; }
namespace "b" { upstreams { upstream "x" { target "127.0.0.1:1"; }; }; exports { upstreams "x"; }; }
namespace "c" { routes { route "r" { upstream "x"; }; }; }`),
			`upstream "x" is ambiguous: exported by namespaces a, b; write "a:x"`},
		{"export shadowing a global", ns(`namespace "a" { upstreams { upstream "auth" { target "127.0.0.1:1"; }; }; exports { upstreams "auth"; }; }
namespace "c" { routes { route "r" { upstream "auth"; }; }; }`),
			`upstream "auth" is ambiguous: both global and exported by namespace "a"`},
		{"global takeover refused too", ns(`namespace "a" { upstreams { upstream "auth" { target "127.0.0.1:1"; }; }; exports { upstreams "auth"; }; }`),
			`route "login": upstream "auth" is ambiguous`},
		{"export of an unknown id", ns(`namespace "a" { exports { upstreams "nope"; }; }`),
			`namespace "a" exports upstream "nope", which it does not define`},
		{"colon in a local id", ns(`namespace "a" { upstreams { upstream "b:x" { target "127.0.0.1:1"; }; }; }`),
			`ids in a namespace may not contain ':'`},
		{"global id posing as a namespace's", `
system { }
listeners { listener "http" { address "127.0.0.1:18080"; }; }
upstreams { upstream "a:x" { target "127.0.0.1:9001"; }; }
routes { route "r" { upstream "a:x"; }; }
namespace "a" { }`, `upstream "a:x" outside namespace "a"`},
		{"bad namespace id", ns(`namespace "a:b" { }`), `namespace id "a:b": use letters`},
		{"namespace without id", ns(`namespace { }`), `namespace needs exactly one id`},
		{"duplicate namespace", ns(`namespace "a" { }
namespace "a" { }`), `duplicate namespace "a"`},
		{"duplicate service", ns(`namespace "a" { service "s" { }; service "s" { }; }`), `namespace "a": duplicate service "s"`},
		{"listener namespace undeclared", ns(`listeners { listener "x" { address "127.0.0.1:1"; namespace "zz"; }; }
namespace "a" { }`), `listener "x": namespace "zz" is not declared`},
		{"listener namespace without namespaces", ns(`listeners { listener "x" { address "127.0.0.1:1"; namespace "zz"; }; }`),
			`there is no namespace block`},
		{"tenants without namespaces", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { header "X-T"; }; }; }`),
			`tenants needs namespace blocks`},
		{"tenants and namespace", ns(`listeners { listener "x" { address "127.0.0.1:1"; namespace "a"; tenants { header "X-T"; }; }; }
namespace "a" { }`), `give namespace or tenants, not both`},
		{"tenants in a namespace", ns(`namespace "a" { listeners { listener "x" { address "127.0.0.1:1"; tenants { header "X-T"; }; }; }; }`),
			`tenants is for shared listeners`},
		{"namespace in a namespace's listener", ns(`namespace "a" { listeners { listener "x" { address "127.0.0.1:1"; namespace "a"; }; }; }`),
			`is bound to it already`},
		{"tenants without a source", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { unidentified status=404; }; }; }
namespace "a" { }`), `tenants needs a source`},
		{"tenants host of an unknown namespace", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { host "h" namespace="zz"; }; }; }
namespace "a" { }`), `namespace "zz" is not one this listener serves`},
		{"tenants host without namespace", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { host "h"; }; }; }
namespace "a" { }`), `write host "a.example.com" namespace="team-a"`},
		{"tenants host twice", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { host "h" namespace="a"; host "H" namespace="b"; }; }; }
namespace "a" { }
namespace "b" { }`), `host "h" is given to namespaces "a" and "b"`},
		{"tenants unknown namespace", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { namespaces "zz"; header "X"; }; }; }
namespace "a" { }`), `tenants: namespace "zz" is not declared`},
		{"jwt without key set", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { jwt { audience "a"; }; }; }; }
namespace "a" { }`), `jwt needs exactly one of jwks-file and jwks-url`},
		{"jwt without audience", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { jwt { jwks-file "/k"; }; }; }; }
namespace "a" { }`), `jwt needs audience`},
		{"jwt url scheme", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { jwt { jwks-url "ftp://k"; audience "a"; }; }; }; }
namespace "a" { }`), `jwks-url "ftp://k" must be an http(s) URL`},
		{"sni without hosts", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { header "X"; sni #true; }; }; }
namespace "a" { }`), `test.kdl:6:73: listener "x": tenants: sni maps the TLS server name through host and subdomain-of`},
		{"unidentified status", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { header "X"; unidentified status=200; }; }; }
namespace "a" { }`), `unidentified status must be an error status`},
		{"unidentified word", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { header "X"; unidentified "drop"; }; }; }
namespace "a" { }`), `unidentified "drop": expected "global"`},
		{"unidentified global with status", ns(`listeners { listener "x" { address "127.0.0.1:1"; tenants { header "X"; unidentified "global" status=404; }; }; }
namespace "a" { }`), `status and message do not apply`},
		{"global builtin in a namespace", ns(`namespace "a" { routes { route "m" { builtin-handler "upstreams"; }; }; }`),
			`builtin-handler "upstreams" shows or changes every namespace's state`},
		{"agent filter unresolved", ns(`namespace "a" { filters { filter "f" { type "agent"; agent "nope"; }; }; routes { route "r" { upstream "auth"; filters "f"; }; }; }`),
			`filter "a:f": agent "nope" is not defined`},
		{"global agent filter naming a namespace's private agent", ns(`filters { filter "g" { type "agent"; agent "a:x"; }; }
namespace "a" { agents { agent "x" { unix-socket "/tmp/x.sock"; }; }; }`), `agent "a:x" is not exported by namespace "a"`},
		{"registration in a namespace", ns(`namespace "a" { agents { registration { address "127.0.0.1:1"; }; }; }`),
			`agent registration is global`},
		{"token namespace undeclared", ns(`admin-api { address "127.0.0.1:19999"; auth { token "t" namespace="zz"; }; }
namespace "a" { }`), `admin-api token: namespace "zz" is not declared`},
		{"default route of another namespace", ns(`namespace "a" { listeners { listener "x" { address "127.0.0.1:1"; default-route "login"; }; }; }`),
			`default-route "login" is not a route`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := adaptString(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}

func TestNamespaceExportsAcrossKinds(t *testing.T) {
	out, _ := mustAdapt(t, nsBase+`
filters { filter "uses-exported-agent" { type "agent"; agent "auth-agent"; }; }
routes { route "g" { matches { path-prefix "/g"; }; upstream "platform:users"; filters "uses-exported-agent"; }; }
namespace "platform" {
    agents { agent "auth-agent" { unix-socket "/tmp/auth.sock"; }; }
    filters { filter "auth" { type "agent"; agent "auth-agent"; }; }
    upstreams { upstream "users" { target "127.0.0.1:9010"; }; }
    exports { upstreams "users"; filters "auth"; agents "auth-agent"; }
}
namespace "shop" {
    routes { route "cart" { matches { path-prefix "/cart"; }; upstream "users"; filters "auth"; }; }
}
`)
	s := string(out)
	for _, frag := range []string{`"agent":"platform:auth-agent"`, `"upstream":"platform:users"`, `"id":"platform:auth-agent"`} {
		if !strings.Contains(s, frag) {
			t.Errorf("output lacks %s", frag)
		}
	}
}

func TestNamespaceOf(t *testing.T) {
	for id, want := range map[string]string{"api": "", "team-a:api": "team-a", "team-a:svc:db": "team-a", ":x": ""} {
		if got := NamespaceOf(id); got != want {
			t.Errorf("NamespaceOf(%q) = %q, want %q", id, got, want)
		}
	}
}
