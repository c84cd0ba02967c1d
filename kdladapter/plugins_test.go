package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/modules/agents"
)

// TestPluginsNotRepeated: several plugins are several blocks, not a
// repeated setting: no "plugin is repeated" warning (issue 23), and each
// filter gets its own plugin, with its route's id (get_route_id).
func TestPluginsNotRepeated(t *testing.T) {
	src := minimal + `
plugins {
    plugin "a" { path "/p/a.wasm"; }
    plugin "b" { path "/p/b.wasm"; timeout-ms 10; }
    plugin "c" { path "/p/c.wasm"; failure-mode "open"; }
    plugin "d" { path "/p/d.wasm"; abi "http-wasm"; max-memory "16MiB"; config { x 1; list "a" "b"; }; }
    plugin "e" { path "/p/e.wasm"; abi "sentinel"; max-memory "8MiB"; config { x 2; }; failure-mode "closed"; max-body-bytes "64KiB"; }
}
filters {
    filter "a" { type "wasm"; plugin "a"; }
    filter "b" { type "wasm"; plugin "b"; }
    filter "c" { type "wasm"; plugin "c"; }
    filter "e" { type "wasm"; plugin "e"; }
}
routes {
    route "r" { builtin-handler "health"; filters "a" "b" "c"; }
    route "r2" { matches { path-prefix "/2"; }; builtin-handler "health"; filters "e"; }
}
`
	out, warns := mustAdapt(t, src)
	if len(warns) != 0 {
		t.Fatalf("warnings:\n%s", warningsText(warns))
	}
	for _, want := range []string{`"plugins":[{"id":"a","path":"/p/a.wasm"}],"route":"r"`, `"plugins":[{"id":"b","path":"/p/b.wasm","timeout":"10ms"}],"route":"r"`, `"plugins":[{"failure_mode":"open","id":"c","path":"/p/c.wasm"}],"route":"r"`,
		`"plugins":[{"abi":"sentinel","config":{"x":2},"failure_mode":"closed","id":"e","max_body_bytes":65536,"max_memory":"8388608","path":"/p/e.wasm"}],"route":"r2"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted JSON lacks %s:\n%s", want, out)
		}
	}
	// A setting repeated inside one plugin is still reported, and an
	// unknown one is an error with a suggestion.
	_, warns = mustAdapt(t, strings.Replace(src, `timeout-ms 10;`, `timeout-ms 10; timeout-ms 20;`, 1))
	if !strings.Contains(warningsText(warns), "(plugins.plugin.timeout-ms): repeated") {
		t.Errorf("repeated path not reported:\n%s", warningsText(warns))
	}
	_, _, err := adaptString(t, strings.Replace(src, `timeout-ms 10;`, `timout-ms 10;`, 1))
	if err == nil || !strings.Contains(err.Error(), `unknown setting "timout-ms" in plugins.plugin (did you mean "timeout-ms"?)`) {
		t.Errorf("unknown key: %v", err)
	}
}

// TestConfigLists: in a plugin's or an agent's config block, `(list)`
// makes a list of any length (issue 13.7); without it one value stays a
// value, several a list.
func TestConfigLists(t *testing.T) {
	src := minimal + `
plugins {
    plugin "p" {
        path "/p.wasm"
        config {
            one "/api"
            many "/api" "/ok"
            single (list)"/api"
            typed (list)1
            (list)node "/x"
            (list)empty
            flag
            nested { allow (list)"/n"; }
        }
    }
}
agents { agent "a" { unix-socket "/a.sock"; config { path_prefixes (list)"/admin"; }; } }
filters {
    filter "p" { type "wasm"; plugin "p"; }
    filter "a" { type "agent"; agent "a"; }
}
routes { route "r" { builtin-handler "health"; filters "p" "a"; } }
`
	out, _ := mustAdapt(t, src)
	for _, want := range []string{
		`"config":{"empty":[],"flag":true,"many":["/api","/ok"],"nested":{"allow":["/n"]},"node":["/x"],"one":"/api","single":["/api"],"typed":[1]}`,
		`"config":{"path_prefixes":["/admin"]}`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted JSON lacks %s:\n%s", want, out)
		}
	}
}

// TestRegistrationTokenHashed: the adapted JSON holds the SHA-256 of the
// registration token, never the token (issue 12.6), and the opt-in for
// configured ids is mapped.
func TestRegistrationTokenHashed(t *testing.T) {
	src := minimal + `
agents {
    agent "waf" { unix-socket "/waf.sock"; }
    registration { unix-socket "/reg.sock"; token "Zx9-very-secret"; token "second"; allow-configured-ids #true; }
}
`
	out, _ := mustAdapt(t, src)
	if strings.Contains(string(out), "Zx9") || strings.Contains(string(out), `"second"`) {
		t.Fatalf("token in the JSON:\n%s", out)
	}
	var cfg struct {
		Apps struct {
			Agents struct {
				Registration agents.RegistrationConfig `json:"registration"`
			} `json:"sentinel_agents"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	r := cfg.Apps.Agents.Registration
	if len(r.Tokens) != 0 || len(r.TokenSHA256) != 2 || r.TokenSHA256[0] != agents.TokenHash("Zx9-very-secret") || r.TokenSHA256[1] != agents.TokenHash("second") || !r.AllowConfiguredIDs {
		t.Fatalf("registration: %+v", r)
	}
	out, _ = mustAdapt(t, strings.Replace(src, " allow-configured-ids #true;", "", 1))
	if strings.Contains(string(out), "allow_configured_ids") {
		t.Fatalf("opt-in without the setting:\n%s", out)
	}
	if _, _, err := adaptString(t, strings.Replace(src, `token "second";`, `token "";`, 1)); err == nil || !strings.Contains(err.Error(), "token is empty") {
		t.Fatalf("empty token: %v", err)
	}
}
