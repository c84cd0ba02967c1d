package sentinelapp

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestCaddyfileGlobalOption loads a Caddyfile whose `sentinel` global
// option declares an upstream with a weighted target and a health check,
// a route and the API (token and token_sha256 with scopes): the proxy
// serves from the registry upstream and the API answers with the scopes.
func TestCaddyfileGlobalOption(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend")
	})}
	go srv.Serve(backend)
	defer srv.Close()
	listen, api := testutil.FreeAddr(t), testutil.FreeAddr(t)
	// sha256("test")
	const testSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(fmt.Sprintf(`{
	admin localhost:%d
	auto_https off
	sentinel {
		upstream cf-u {
			target %s 4
			health_check tcp {
				interval 1m
			}
		}
		route cf-r
		api %s {
			token reader r34d-only read
			token_sha256 ops %s operate
			max_body_bytes 4096
			allowed_target_networks 127.0.0.0/8
		}
	}
}

http://%s {
	sentinel_route cf-r
	reverse_proxy {
		dynamic sentinel cf-u
	}
}
`, adminPort, backend.Addr(), api, testSHA, listen), "caddyfile")

	res, err := http.Get("http://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "backend" {
		t.Fatalf("proxy: %d %q", res.StatusCode, body)
	}
	base := "http://" + api + "/api/v1"
	if code, body := call(t, "GET", base+"/upstreams/cf-u", "r34d-only", ""); code != 200 || !strings.Contains(body, `"weight":4`) {
		t.Fatalf("read token: %d %s", code, body)
	}
	if code, _ := call(t, "PUT", base+"/routes/cf-r/enabled", "r34d-only", `{"enabled":false}`); code != http.StatusForbidden {
		t.Errorf("read token disabled a route: %d", code)
	}
	if code, body := call(t, "PUT", base+"/routes/cf-r/enabled", "test", `{"enabled":false}`); code != 200 {
		t.Fatalf("operate token (token_sha256): %d %s", code, body)
	}
	if code, body := get(t, "http://"+listen+"/"); code != http.StatusServiceUnavailable {
		t.Errorf("disabled route: %d %s", code, body)
	}
}

// TestCaddyfileGlobalOptionErrors: bad options are refused with the
// option named, and a token is never echoed.
func TestCaddyfileGlobalOptionErrors(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	for src, want := range map[string]string{
		`sentinel bogus`:                                                    "wrong argument count",
		`sentinel { frobnicate }`:                                           `unrecognized option "frobnicate"`,
		`sentinel { upstream u { target a:1 0 } }`:                          `weight "0" is not a positive integer`,
		`sentinel { upstream u { target } }`:                                `target <address> [<weight>]`,
		"sentinel {\n upstream u\n upstream u\n}":                           `upstream "u" declared twice`,
		`sentinel { upstream u { health_check { bogus 1 } } }`:              `health_check: unrecognized option "bogus"`,
		`sentinel { upstream u { health_check { interval x } } }`:           "interval",
		`sentinel { upstream u { health_check { healthy_threshold -1 } } }`: `"-1" is not a non-negative integer`,
		`sentinel { api { token only-a-name-s3cret } }`:                     "token <name> <token> [<scope>...]",
		`sentinel { api { tls a.pem } }`:                                    "tls [<cert_file> <key_file>]",
		`sentinel { api { bogus } }`:                                        `api: unrecognized option "bogus"`,
		`sentinel { state_file }`:                                           "wrong argument count",
	} {
		// One line per option: "{ " and " }" open and close lines.
		lines := strings.NewReplacer("{ ", "{\n", " }", "\n}").Replace(src)
		_, _, err := adapter.Adapt([]byte("{\n"+lines+"\n}\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the token: %v", src, err)
		}
	}
	// Two blocks add up.
	out, _, err := adapter.Adapt([]byte("{\n sentinel {\n route a\n }\n sentinel {\n route b\n state_file /s\n }\n}\n"), nil)
	if err != nil || !strings.Contains(string(out), `"sentinel":{"routes":["a","b"],"state_file":"/s"}`) {
		t.Errorf("two blocks: %s (%v)", out, err)
	}
}
