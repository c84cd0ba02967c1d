package kdladapter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput checks that each bad configuration fails with a message
// that names what is wrong and where (file:line:col).
func TestBadInput(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"kdl syntax", "system {\n  listeners \"x\n", []string{"test.kdl:2:"}},
		{"unknown top-level with suggestion", minimal + "upstream { }\n", []string{"test.kdl:8:1: unknown setting \"upstream\" in the top level (did you mean \"upstreams\"?)"}},
		{"unknown listener key", "system { }\nlisteners {\n listener \"a\" {\n  address \"127.0.0.1:1\"\n  adress \"x\"\n }\n}\n", []string{"test.kdl:5:3: unknown setting \"adress\" in listeners.listener (did you mean \"address\"?)"}},
		{"missing system", "listeners { listener \"a\" { address \"127.0.0.1:1\"; } }", []string{"missing `system` block"}},
		{"no listener", "system { }", []string{"no listener"}},
		{"listener without address", "system { }\nlisteners { listener \"a\" { } }", []string{"test.kdl:2:13: listener \"a\" needs an address"}},
		{"bad address", "system { }\nlisteners { listener \"a\" { address \"localhost\"; } }", []string{"address \"localhost\" must be host:port"}},
		{"bad protocol", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; protocol \"htp\"; } }", []string{"protocol \"htp\" is not one of http, https, h2, h3 (did you mean \"http\"?)"}},
		{"https without tls", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; protocol \"https\"; } }", []string{"protocol \"https\" needs a tls"}},
		{"client-auth without ca", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; tls { cert-file \"c\"; key-file \"k\"; client-auth #true; } } }", []string{"client-auth #true needs ca-file"}},
		{"bad tls version", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; tls { cert-file \"c\"; key-file \"k\"; min-version \"1.1\"; } } }", []string{"min-version \"1.1\" is not a supported TLS version"}},
		{"bad cipher", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; tls { cert-file \"c\"; key-file \"k\"; cipher-suite \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA38\"; } } }", []string{"unknown cipher suite", "did you mean \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\""}},
		{"duplicate route id", minimal + "routes {\n route \"a\" { builtin-handler \"health\"; }\n}\nroutes {\n route \"a\" { builtin-handler \"health\"; }\n}\n", []string{"test.kdl:12:2: duplicate route id \"a\" (first defined at test.kdl:9:2)"}},
		{"unknown upstream", minimal + "routes { route \"a\" { upstream \"bakend\"; } }\nupstreams { upstream \"backend\" { target \"127.0.0.1:1\"; } }", []string{"upstream \"bakend\" is not defined in upstreams { } (did you mean \"backend\"?)"}},
		{"unknown filter", minimal + "routes { route \"a\" { builtin-handler \"health\"; filters \"corz\"; } }\nfilters { filter \"cors\" { type \"cors\"; } }", []string{"filter \"corz\" is not defined", "did you mean \"cors\""}},
		{"unknown filter type", minimal + "filters { filter \"x\" { type \"cahce\"; } }", []string{"filter \"x\": unknown type \"cahce\""}},
		{"filter key of another type", minimal + "filters { filter \"x\" { type \"cors\"; max-rps 3; } }", []string{"unknown setting \"max-rps\" in filters.filter[cors]"}},
		{"route without responder", minimal + "routes { route \"a\" { matches { path \"/\"; } } }", []string{"route \"a\" has nothing to answer with"}},
		{"two responders", minimal + "routes { route \"a\" { builtin-handler \"health\"; static-files { root \"/x\"; } } }", []string{"exclude each other"}},
		{"unknown lb", minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; load-balancing \"least-connection\"; } }", []string{"unknown load-balancing \"least-connection\" (did you mean \"least-connections\"?)"}},
		{"lb not yet", minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; load-balancing \"least_tokens_queued\"; } }", []string{"not supported yet: load-balancing \"least_tokens_queued\" — upstream \"u\""}},
		{"lb tunable typo", minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; load-balancing \"peak_ewma\" { decay-tme \"5s\"; }; } }", []string{"unknown setting \"decay-tme\" in upstreams.upstream.load-balancing.peak_ewma (did you mean \"decay-time\"?)"}},
		{"target without port", minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { target \"backend\"; } }", []string{"target \"backend\" must be host:port"}},
		{"upstream without target", minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { } }", []string{"upstream \"u\" has no target"}},
		{"bad regex", minimal + "routes { route \"a\" { matches { path-regex \"(\"; }; builtin-handler \"health\"; } }", []string{"path-regex \"(\" does not compile"}},
		{"bad priority", minimal + "routes { route \"a\" { priority \"hihg\"; builtin-handler \"health\"; } }", []string{"priority \"hihg\" is not low, normal, high, critical or an integer (did you mean \"high\"?)"}},
		{"type error", minimal + "routes { route \"a\" { builtin-handler \"health\"; policies { timeout-secs \"30\"; } } }", []string{"timeout-secs takes an integer, not string \"30\""}},
		{"bad size", minimal + "routes { route \"a\" { builtin-handler \"health\"; policies { max-body-size \"10 parsecs\"; } } }", []string{"invalid size unit"}},
		{"unknown builtin", minimal + "routes { route \"a\" { builtin-handler \"stauts\"; } }", []string{"unknown builtin-handler \"stauts\" (did you mean \"status\"?)"}},
		{"default-route unknown", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; default-route \"statsu\"; } }\nroutes { route \"status\" { builtin-handler \"status\"; } }", []string{"default-route \"statsu\" is not a route (did you mean \"status\"?)"}},
		{"missing env", minimal + "routes { route \"a\" { builtin-handler \"health\"; upstream \"${UPSTREAM}\"; } }", []string{"environment variable UPSTREAM is not set"}},
		{"include without file", minimal + "include \"x/*.kdl\"\n", []string{"includes need the configuration to be read from a file"}},
		{"schema version", "schema-version \"2.0\"\n" + minimal, []string{"schema-version \"2.0\" is not supported"}},
		{"agent without transport", minimal + "agents { agent \"waf\" { timeout-ms 5; } }", []string{"test.kdl:8:10: agent \"waf\" needs a transport"}},
		{"agent unknown key", minimal + "agents { agent \"waf\" { unix-socket \"/x\"; timout-ms 5; } }", []string{"test.kdl:8:42: unknown setting \"timout-ms\" in agents.agent (did you mean \"timeout-ms\"?)"}},
		{"agent http transport", minimal + "agents { agent \"waf\" { http \"http://x\"; } }", []string{"test.kdl:8:24: agent \"waf\": the http transport does not exist in protocol v2"}},
		{"agent bad event", minimal + "agents { agent \"waf\" { unix-socket \"/x\"; events \"request_hedaers\"; } }", []string{"events \"request_hedaers\" is not one of", "(did you mean \"request_headers\"?)"}},
		{"agent bad failure mode", minimal + "agents { agent \"waf\" { unix-socket \"/x\"; failure-mode \"half\"; } }", []string{"failure-mode \"half\" is not one of open, closed"}},
		{"agent bad body mode", minimal + "agents { agent \"waf\" { unix-socket \"/x\"; request-body-mode \"hybrid:x\"; } }", []string{"hybrid needs a byte count"}},
		{"agent bad pool key", minimal + "agents { agent \"waf\" { unix-socket \"/x\"; pool { conections 2; }; } }", []string{"unknown setting \"conections\" in agents.agent.pool (did you mean \"connections\"?)"}},
		{"agent two transports", minimal + "agents { agent \"waf\" { unix-socket \"/x\"; grpc \"http://a:1\"; } }", []string{"give one transport"}},
		{"agent filter unknown agent", minimal + "routes { route \"a\" { builtin-handler \"health\"; filters \"f\"; } }\nfilters { filter \"f\" { type \"agent\"; agent \"wfa\"; } }\nagents { agent \"waf\" { unix-socket \"/x\"; } }", []string{"test.kdl:9:44: filter \"f\": agent \"wfa\" is not defined in agents { } (did you mean \"waf\"?)"}},
		{"agent filter without agent", minimal + "routes { route \"a\" { builtin-handler \"health\"; filters \"f\"; } }\nfilters { filter \"f\" { type \"agent\"; } }", []string{"type \"agent\" needs agent"}},
		{"agent filter unknown key", minimal + "filters { filter \"f\" { type \"agent\"; agent \"w\"; phse \"request\"; } }", []string{"unknown setting \"phse\" in filters.filter[agent] (did you mean \"phase\"?)"}},
		{"registration defaults unknown key", minimal + "agents { registration { unix-socket \"/x\"; token \"t\"; defaults { timout-ms 5; }; } }", []string{"unknown setting \"timout-ms\" in agents.registration.defaults (did you mean \"timeout-ms\"?)"}},
		{"registration without auth", minimal + "agents { registration { unix-socket \"/x\"; } }", []string{"agents.registration needs a token"}},
		{"admin-api without auth", minimal + "admin-api { enabled #true; }", []string{"test.kdl:8:1: admin-api: the control-plane API refuses unauthenticated calls"}},
		{"admin-api bad scope", minimal + "admin-api { auth { token \"t\" scope=\"reed\"; }; }", []string{"scope \"reed\" is not one of read, operate, admin (did you mean \"read\"?)"}},
		{"health-check key of another type", minimal + "routes { route \"a\" { upstream \"u\"; }; }\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; health-check { type \"http\" { servce \"x\"; }; }; }; }", []string{"unknown setting \"servce\" in health-check type \"http\""}},
		{"dns-01 not yet", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; tls { acme { email \"a@b\"; domains \"x.com\"; challenge-type \"dns-01\"; } } } }", []string{"not supported yet: dns-01"}},
		{"empty file", "", []string{"test.kdl:1:1: missing `system` block", "test.kdl:1:1: no listener"}},
		{"comments only", "// nothing yet\n", []string{"test.kdl:1:1: missing `system` block"}},
		{"v1 and v2 both invalid", "node [1, 2]", []string{"test.kdl:1:6: unexpected '['"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "test.kdl"
			if c.name == "include without file" {
				name = "" // as when posted to /load
			}
			_, _, err := Adapt(name, []byte(c.src), noEnv, OSFiles{})
			if err == nil {
				t.Fatalf("expected an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestWarnings checks the settings that are accepted but not honoured.
func TestWarnings(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"max-connections", "system { max-connections 5; }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }", "test.kdl:1 (system.max-connections): accepted but has no effect: no global connection limit yet\n"},
		{"worker-threads", "system { worker-threads 999; }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }", "worker-threads 999 is not applied: set GOMAXPROCS=999"},
		{"server deprecated", "server { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }", "the `server` block is deprecated"},
		{"repeated scalar", "system { graceful-shutdown-timeout-secs 1; graceful-shutdown-timeout-secs 2; }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }", "test.kdl:1 (system.graceful-shutdown-timeout-secs): repeated; the first one (line 1) is used"},
		{"weights ignored", minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { target \"127.0.0.1:1\" weight=5; target \"127.0.0.1:2\" weight=1; } }", "target weights are ignored by round_robin (use \"weighted\")"},
		{"route circuit breaker (caveat 16)", minimal + "routes { route \"a\" { builtin-handler \"health\"; circuit-breaker { failure-threshold 5; } } }", "(routes.route.circuit-breaker): accepted but has no effect"},
		{"tls 1.3 suite", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; tls { cert-file \"c\"; key-file \"k\"; cipher-suites { - \"TLS_AES_128_GCM_SHA256\"; } } } }", "TLS 1.3 cipher suite TLS_AES_128_GCM_SHA256 is always enabled"},
		{"empty include", "", "matches no file"},
		{"brotli", minimal + "routes { route \"a\" { builtin-handler \"health\"; filters \"c\"; } }\nfilters { filter \"c\" { type \"compress\"; algorithms \"br\"; } }", "compression algorithm \"br\" is not available"},
		{"unused filter", minimal + "filters { filter \"c\" { type \"cors\"; } }", "filter \"c\" is not used by any route"},
		{"unused upstream", minimal + "upstreams { upstream \"u\" { target \"127.0.0.1:1\"; } }", "upstream \"u\" is not used by any route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := c.src
			name := "test.kdl"
			if c.name == "empty include" {
				dir := t.TempDir()
				name = filepath.Join(dir, "test.kdl")
				src = minimal + "include \"none/*.kdl\"\n"
			}
			_, warns, err := Adapt(name, []byte(src), noEnv, OSFiles{})
			if err != nil {
				t.Fatal(err)
			}
			if got := warningsText(warns); !strings.Contains(got, c.want) {
				t.Errorf("warnings do not contain %q:\n%s", c.want, got)
			}
		})
	}
}

// handlersOf returns the handler list of the first route of server srv
// in an adapted config.
func routesOf(t *testing.T, out []byte, srv string) []any {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	s := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)[srv].(map[string]any)
	return s["routes"].([]any)
}

// TestCaveats turns the original's as-implemented caveats (schema
// reference §17) into tests of the intended behaviour.
func TestCaveats(t *testing.T) {
	t.Run("1 hyphenated LB names are honoured, not round robin", func(t *testing.T) {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; } }
upstreams { upstream "u" { target "127.0.0.1:1"; load-balancing "least-connections"; } }`)
		if !strings.Contains(string(out), `"policy":"least_conn"`) {
			t.Errorf("least-connections not mapped: %s", out)
		}
		out, _ = mustAdapt(t, minimal+`routes { route "a" { upstream "u"; } }
upstreams { upstream "u" { target "127.0.0.1:1"; load-balancing "ip-hash"; } }`)
		if !strings.Contains(string(out), `"policy":"client_ip_hash"`) {
			t.Errorf("ip-hash not mapped: %s", out)
		}
	})
	t.Run("3 route policies are parsed", func(t *testing.T) {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { builtin-handler "health"; policies { timeout-secs 7; max-body-size "2MB"; failure-mode "open"; } } }`)
		for _, want := range []string{`"timeout":"7s"`, `"max_size":2097152`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("missing %s in %s", want, out)
			}
		}
	})
	t.Run("4 upstream -secs timeouts are honoured", func(t *testing.T) {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; } }
upstreams { upstream "u" { target "127.0.0.1:1"; timeouts { connect-secs 4; read-secs 9; }; connection-pool { idle-timeout-secs 11; } } }`)
		for _, want := range []string{`"dial_timeout":"4s"`, `"read_timeout":"9s"`, `"idle_timeout":"11s"`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("missing %s in %s", want, out)
			}
		}
	})
	t.Run("5 both limits spellings", func(t *testing.T) {
		for _, key := range []string{"max-body-size", "max-body-size-bytes"} {
			out, _ := mustAdapt(t, minimal+`routes { route "a" { builtin-handler "health"; } }
limits { `+key+` 4096; }`)
			if !strings.Contains(string(out), `"max_size":4096`) {
				t.Errorf("%s not honoured: %s", key, out)
			}
		}
	})
	t.Run("6 listener TLS hardening is applied", func(t *testing.T) {
		out, _ := mustAdapt(t, `system { }
listeners { listener "a" { address "127.0.0.1:1"; protocol "https"; tls { cert-file "c"; key-file "k"; ca-file "ca"; client-auth #true; min-version "1.3"; } } }`)
		for _, want := range []string{`"mode":"require_and_verify"`, `"protocol_min":"tls1.3"`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("missing %s in %s", want, out)
			}
		}
	})
	t.Run("7 method takes every argument; several paths are alternatives", func(t *testing.T) {
		out, warns := mustAdapt(t, minimal+`routes { route "a" { matches { method "GET" "POST"; path "/a"; path "/b"; }; builtin-handler "health"; } }`)
		if !strings.Contains(string(out), `"method":["GET","POST"]`) || !strings.Contains(string(out), `"path":["/a","/b"]`) {
			t.Errorf("matcher: %s", out)
		}
		if !strings.Contains(warningsText(warns), "alternatives") {
			t.Errorf("no warning about path alternatives: %s", warningsText(warns))
		}
	})
	t.Run("8 agent filters are one sentinel_agents handler, in filter order", func(t *testing.T) {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { builtin-handler "health"; filters "h" "f1" "f2"; } }
filters { filter "h" { type "headers"; set { X-A "1"; }; }
  filter "f1" { type "agent"; agent "waf"; failure-mode "closed"; }
  filter "f2" { type "agent"; agent "auth"; timeout-ms 50; } }
agents { agent "waf" { unix-socket "/x"; }; agent "auth" { grpc "http://127.0.0.1:1"; }; }`)
		want := `{"handle":[{"handler":"headers","request":{"set":{"X-A":["1"]}}},{"filters":[{"agent":"waf","failure_mode":"closed"},{"agent":"auth","timeout":"50ms"}],"handler":"sentinel_agents","route":"a"},`
		if !strings.Contains(string(out), want) {
			t.Errorf("route: %s", out)
		}
	})
	t.Run("14 cors options are honoured", func(t *testing.T) {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { builtin-handler "health"; filters "c"; } }
filters { filter "c" { type "cors"; allowed-origins "https://a.example"; allowed-methods "GET"; } }`)
		if !strings.Contains(string(out), `"allowed_origins":["https://a.example"]`) || !strings.Contains(string(out), `"allowed_methods":["GET"]`) {
			t.Errorf("cors: %s", out)
		}
	})
	t.Run("16 route-level circuit-breaker warns", func(t *testing.T) {
		_, warns := mustAdapt(t, minimal+`routes { route "a" { builtin-handler "health"; circuit-breaker { failure-threshold 5; } } }`)
		if !strings.Contains(warningsText(warns), "circuit-breaker") {
			t.Error("no warning")
		}
	})
	t.Run("order: priority, then specificity, then config order", func(t *testing.T) {
		out, _ := mustAdapt(t, minimal+`routes {
  route "catch" { priority "low"; matches { path-prefix "/"; }; builtin-handler "status"; }
  route "short" { matches { path-prefix "/a"; }; builtin-handler "health"; }
  route "long" { matches { path-prefix "/a/b"; }; builtin-handler "health"; }
  route "exact" { matches { path "/a/b/c"; }; builtin-handler "health"; }
  route "first" { priority 500; builtin-handler "health"; }
}`)
		routes := routesOf(t, out, "http")
		var order []string
		for _, r := range routes[:5] {
			h := r.(map[string]any)["handle"].([]any)
			last := h[len(h)-1].(map[string]any)
			order = append(order, last["route"].(string))
		}
		if got := strings.Join(order, ","); got != "first,exact,long,short,catch" {
			t.Errorf("order %s", got)
		}
	})
}

// TestEnvExpansion covers ${VAR}; and ${VAR:-default}.
func TestEnvExpansion(t *testing.T) {
	src := `system { }
listeners { listener "a" { address "${HOST:-127.0.0.1}:${PORT}"; } }
routes { route "r" { builtin-handler "health"; policies { request-headers { set { "X-Lit" "$${NOT_EXPANDED}"; } } } } }`
	out, _, err := Adapt("x.kdl", []byte(src), envOf("PORT", "18090"), OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"listen":["127.0.0.1:18090"]`) || !strings.Contains(string(out), `${NOT_EXPANDED}`) {
		t.Errorf("expansion: %s", out)
	}
	for _, bad := range []string{"${}", "${1X}", "${UNCLOSED"} {
		if _, _, err := expand(bad, noEnv); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
}

// TestIncludes covers globs relative to the including file, nesting,
// cycles and duplicate ids across files.
func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.kdl", "system { }\ninclude \"conf.d/*.kdl\"\n")
	write("conf.d/a-listeners.kdl", "listeners { listener \"a\" { address \"127.0.0.1:1\"; } }\n")
	write("conf.d/b-routes.kdl", "routes { route \"r\" { upstream \"u\"; } }\ninclude \"../more/*.kdl\"\n")
	write("more/upstreams.kdl", "upstreams { upstream \"u\" { target \"127.0.0.1:2\"; } }\n")
	main := filepath.Join(dir, "main.kdl")
	src, _ := os.ReadFile(main)
	out, _, err := Adapt(main, src, noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"targets":[{"address":"127.0.0.1:2"}]`) {
		t.Errorf("nested include not merged: %s", out)
	}

	write("more/cycle.kdl", "include \"../main.kdl\"\n")
	_, _, err = Adapt(main, src, noEnv, OSFiles{})
	if err == nil || !strings.Contains(err.Error(), "circular include") {
		t.Errorf("cycle: %v", err)
	}
	os.Remove(filepath.Join(dir, "more/cycle.kdl"))

	write("more/dup.kdl", "listeners { listener \"a\" { address \"127.0.0.1:3\"; } }\n")
	_, _, err = Adapt(main, src, noEnv, OSFiles{})
	if err == nil || !strings.Contains(err.Error(), "dup.kdl:1:13: duplicate listener id \"a\" (first defined at "+filepath.Join(dir, "conf.d/a-listeners.kdl")+":1:13)") {
		t.Errorf("duplicate across files: %v", err)
	}
}

// TestMultiFileExample loads the original's multi-file example folder
// through its own entry point's include globs, with the stale
// routes/api.kdl left out (see the corpus README).
func TestMultiFileExample(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "example-multi-file")
	entry, err := os.ReadFile(filepath.Join(dir, "zentinel.kdl"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := Adapt(filepath.Join(dir, "zentinel.kdl"), entry, noEnv, withoutStaleAPI{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"http":{`, `"https":{`, `{"address":"127.0.0.1:9003"}`, `"certificate":"/etc/zentinel/certs/example.crt"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s", want)
		}
	}
}

// TestDirectoryLayout loads the original's multi-file folder as a
// directory (its entry includes the same folders: each file is read once).
func TestDirectoryLayout(t *testing.T) {
	src := filepath.Join(corpusDir(t), "example-multi-file")
	dir := t.TempDir()
	for _, rel := range []string{"zentinel.kdl", "listeners/http.kdl", "listeners/https.kdl", "upstreams/backends.kdl", "routes/static.kdl", "environments/production.kdl"} {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755)
		os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "routes", "draft.example.kdl"), []byte("not kdl ["), 0o644)
	entry, err := DirectoryEntry(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(entry), "example.kdl") || strings.Contains(string(entry), "production") {
		t.Errorf("entry includes what it should not:\n%s", entry)
	}
	name := filepath.Join(t.TempDir(), "entry.kdl")
	out, _, err := Adapt(name, entry, noEnv, OSFiles{})
	if err != nil {
		t.Fatalf("%v\n%s", err, entry)
	}
	// The route's guard on both listeners, its handlers once (in the
	// sentinel_routes app).
	if strings.Count(string(out), `{"handle_in_app":true,"handler":"sentinel_route","route":"static"}`) != 2 ||
		strings.Count(string(out), `"upstream":"static"`) != 1 || !strings.Contains(string(out), `{"address":"127.0.0.1:9003"}`) {
		t.Errorf("expected the static route on both listeners: %s", out)
	}
	// An environment file is added on request; this one is the old schema.
	entry, err = DirectoryEntry(dir, "production")
	if err != nil || !strings.Contains(string(entry), "environments/production.kdl") {
		t.Fatalf("%v %s", err, entry)
	}
	if _, err := DirectoryEntry(dir, "staging"); err == nil {
		t.Error("missing environment: expected an error")
	}
	if _, err := DirectoryEntry(t.TempDir(), ""); err == nil {
		t.Error("empty directory: expected an error")
	}
}

// withoutStaleAPI reads the real files but for routes/api.kdl.
type withoutStaleAPI struct{ OSFiles }

func (w withoutStaleAPI) ReadFile(p string) ([]byte, error) {
	if filepath.Base(p) == "api.kdl" {
		return []byte("// left out: stale file\n"), nil
	}
	return os.ReadFile(p)
}

// ReadFileMax reads like ReadFile (the embedded OSFiles would bypass it).
func (w withoutStaleAPI) ReadFileMax(p string, _ int64) ([]byte, error) { return w.ReadFile(p) }

// TestAdminAPI maps the control-plane block onto the sentinel app.
func TestAdminAPI(t *testing.T) {
	src := minimal + `admin-api {
    address "127.0.0.1:19901"
    auth {
        type "bearer"
        token "${TOKEN}"
        token "ro" scope="read" name="grafana"
    }
    state-file "/var/lib/sentinel/state.json"
    max-body-bytes 65536
}
routes { route "r"; { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:2" weight=3; health-check { type "grpc" { service "svc"; }; interval-secs 2; }; }; }
`
	src = strings.Replace(src, `route "r";`, `route "r"`, 1)
	out, _, err := Adapt("/etc/sentinel/sentinel.kdl", []byte(src), envOf("TOKEN", "s3cret"), OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"api":{"listen":"127.0.0.1:19901","max_body_bytes":65536,"tokens":[{"token_sha256":"` + sha256Hex("s3cret") + `"},{"name":"grafana","scopes":["read"],"token_sha256":"` + sha256Hex("ro") + `"}]}`,
		`"admin":{"disabled":true}`,
		`"state_file":"/var/lib/sentinel/state.json"`, `"config_file":"/etc/sentinel/sentinel.kdl"`,
		`"health_check":{"interval":"2s","service":"svc","type":"grpc"}`, `{"address":"127.0.0.1:2","weight":3}`,
		`"routes":["r"]`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
	if strings.Contains(string(out), "s3cret") || strings.Contains(string(out), `"token":`) {
		t.Errorf("a token in the Caddy JSON: %s", out)
	}
	out, _ = mustAdapt(t, minimal+"admin-api { enabled #false; }")
	if strings.Contains(string(out), `"api"`) || strings.Contains(string(out), `"admin"`) {
		t.Error("disabled API mapped, or Caddy's admin changed without it")
	}
}

// TestProtocolExtensions covers 0-RTT and the gRPC-Web filter.
func TestProtocolExtensions(t *testing.T) {
	out, _ := mustAdapt(t, `system { }
listeners { listener "a" { address "127.0.0.1:1"; protocol "h3"; allow-0rtt #true; tls { internal #true; }; }; }
routes { route "g" { matches { path-prefix "/pkg.Svc/"; }; upstream "u"; filters "gw"; }; }
filters { filter "gw" { type "grpc-web"; }; }
upstreams { upstream "u" { target "127.0.0.1:2"; http-version { min-version 2; }; }; }`)
	for _, want := range []string{`"allow_0rtt":true`, `{"handler":"grpc_web"}`, `"protocols":["h1","h2","h3"]`, `"versions":["h2c","2"]`, `"install_trust":false`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
}

// TestWasmPlugins maps plugins { } and filters of type "wasm".
func TestWasmPlugins(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`plugins {
    plugin "inject" {
        path "/srv/plugins/inject.wasm"
        config {
            header "X-Plugin"
            values "a" "b"
            strict
            limits { max 3; }
        }
        max-memory "16MiB"
        timeout-ms 5
        failure-mode "closed"
    }
}
routes { route "r" { builtin-handler "health"; filters "w"; }; }
filters { filter "w" { type "wasm"; plugin "inject"; }; }`)
	want := `{"handler":"sentinel_wasm","plugins":[{"config":{"header":"X-Plugin","limits":{"max":3},"strict":true,"values":["a","b"]},"failure_mode":"closed","id":"inject","max_memory":"16777216","path":"/srv/plugins/inject.wasm","timeout":"5ms"}],"route":"r"}`
	if !strings.Contains(string(out), want) {
		t.Errorf("missing %s in %s", want, out)
	}
	for _, c := range []struct{ src, want string }{
		{`filters { filter "w" { type "wasm"; plugin "nope"; }; }` + "\n" + `routes { route "r" { builtin-handler "health"; filters "w"; }; }`, `plugin "nope" is not defined`},
		{`plugins { plugin "p" { pth "x"; }; }` + "\n" + `filters { filter "w" { type "wasm"; plugin "p"; }; }` + "\n" + `routes { route "r" { builtin-handler "health"; filters "w"; }; }`, `unknown setting "pth" in plugins.plugin (did you mean "path"?)`},
		{`filters { filter "w" { type "wasm"; }; }` + "\n" + `routes { route "r" { builtin-handler "health"; filters "w"; }; }`, `type "wasm" needs plugin`},
	} {
		if _, _, err := adaptString(t, minimal+c.src); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.want, err)
		}
	}
}

// TestLoadBalancingPolicies maps the Sentinel algorithms and their
// tunables (the original hard-coded them).
func TestLoadBalancingPolicies(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" {
    target "127.0.0.1:1" weight=3
    target "127.0.0.1:2"
    load-balancing "adaptive" {
        adjustment-interval "500ms"
        min-requests 20
        latency-threshold "10ms"
        latency-ratio 2.5
        error-threshold 0.1
        disable-breaker #false
    }
}; }`)
	// disable-breaker #false is the policy's default: the typed policy
	// (adaptive.Adaptive, omitempty) leaves it out.
	want := `"selection_policy":{"adjustment_interval":"500ms","error_threshold":0.1,"latency_ratio":2.5,"latency_threshold":"10ms","min_requests":20,"policy":"adaptive","upstream":"u"}`
	if !strings.Contains(string(out), want) {
		t.Errorf("missing %s in %s", want, out)
	}
	for algo, policy := range map[string]string{"peak-ewma": "peak_ewma", "p2c": "p2c", "wlc": "weighted_least_connections", "maglev": "maglev", "consistent-hash": "consistent_hash", "locality": "locality_aware", "subset": "deterministic_subset"} {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; load-balancing "`+algo+`"; }; }`)
		if !strings.Contains(string(out), `"policy":"`+policy+`","upstream":"u"`) {
			t.Errorf("%s: %s", algo, out)
		}
	}
}

// TestLocalityZones: the original's zone prefixes are stripped from the
// dialled addresses and become the locality_aware policy's zones; other
// policies warn that the zones are unused; an empty zone is an error.
func TestLocalityZones(t *testing.T) {
	out, warns := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" {
    target "zone=us-east-1,127.0.0.1:1"
    target "eu-west-1/127.0.0.1:2" weight=2
    target "127.0.0.1:3"
    load-balancing "locality-aware" { zone "us-east-1"; }
}; }`)
	for _, want := range []string{
		`"zones":{"127.0.0.1:1":"us-east-1","127.0.0.1:2":"eu-west-1"}`,
		`{"address":"127.0.0.1:1"}`, `{"address":"127.0.0.1:2","weight":2}`,
		`"zone":"us-east-1"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
	if strings.Contains(string(out), "zone=") || strings.Contains(string(out), "eu-west-1/") {
		t.Errorf("a zone prefix reached an address: %s", out)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %s", warningsText(warns))
	}

	out, warns = mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "z1/127.0.0.1:1"; load-balancing "round-robin"; }; }`)
	if !strings.Contains(string(out), `{"address":"127.0.0.1:1"}`) || !strings.Contains(warningsText(warns), "only used by load-balancing \"locality-aware\"") {
		t.Errorf("%s\n%s", out, warningsText(warns))
	}

	_, _, err := adaptString(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "zone=,127.0.0.1:1"; load-balancing "locality-aware"; }; }`)
	if err == nil || !strings.Contains(err.Error(), `test.kdl:9:35: upstream "u": target "zone=,127.0.0.1:1" has an empty zone`) {
		t.Errorf("err = %v", err)
	}
}

// TestGuestPolicies: locality_aware's fallback and deterministic_subset's
// inner policy become selection policy modules ("none" stays a string);
// an unknown name is an error at its position.
func TestGuestPolicies(t *testing.T) {
	for kdl, want := range map[string]string{
		`load-balancing "locality" { fallback "random"; }`:            `"fallback":{"policy":"random"}`,
		`load-balancing "locality" { fallback "none"; }`:              `"fallback":"none"`,
		`load-balancing "locality" { fallback "least-connections"; }`: `"fallback":{"policy":"least_conn"}`,
		`load-balancing "subset" { inner "least_connections"; }`:      `"inner":{"policy":"least_conn"}`,
		`load-balancing "subset" { inner "round_robin"; }`:            `"inner":{"policy":"round_robin"}`,
		`load-balancing "subset" { inner "p2c"; }`:                    `"inner":{"policy":"p2c"}`,
	} {
		out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; `+kdl+` }; }`)
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: no %s in %s", kdl, want, out)
		}
	}
	for kdl, want := range map[string]string{
		`load-balancing "locality" { fallback "nearest"; }`: `fallback "nearest" of load-balancing "locality_aware": expected round_robin, random, least_connections, ip_hash, p2c or none`,
		`load-balancing "subset" { inner "none"; }`:         `inner "none" of load-balancing "deterministic_subset": expected round_robin, random, least_connections, ip_hash, p2c`,
	} {
		_, _, err := Adapt("t.kdl", []byte(minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; `+kdl+` }; }`), noEnv, OSFiles{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", kdl, err, want)
		}
	}
}
