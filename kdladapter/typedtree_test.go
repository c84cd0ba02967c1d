package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
	"github.com/sentinel-proxy/sentinel/modules/controlapi"
)

// TestTypedTree: nested structs (pointers, embedded, in slices and maps)
// become objs whose keys the encoder sorts, durations at any depth are
// duration strings, omitempty and "-" are honoured, outer fields win over
// promoted ones, raw JSON is kept.
func TestTypedTree(t *testing.T) {
	type inner struct {
		Z    string         `json:"z"`
		A    caddy.Duration `json:"a,omitempty"`
		Skip int            `json:"-"`
	}
	type base struct {
		Shadowed string         `json:"shadowed"`
		Deep     caddy.Duration `json:"deep"`
	}
	type outer struct {
		base
		Shadowed string            `json:"shadowed"`
		Ptr      *inner            `json:"ptr,omitempty"`
		Nil      *inner            `json:"nil,omitempty"`
		List     []inner           `json:"list"`
		Map      map[string]inner  `json:"map,omitempty"`
		Raw      json.RawMessage   `json:"raw,omitempty"`
		Empty    string            `json:"empty,omitempty"`
		Zero     int               `json:"zero"`
		Strs     []string          `json:"strs"`
		Ints     map[int]string    `json:"ints,omitempty"`
		Headers  map[string][]bool `json:"headers,omitempty"`
		unexp    int
	}
	v := outer{
		base:     base{Shadowed: "inner", Deep: caddy.Duration(time.Minute)},
		Shadowed: "outer",
		Ptr:      &inner{Z: "p", A: caddy.Duration(1500 * time.Millisecond), Skip: 3},
		List:     []inner{{Z: "l"}},
		Map:      map[string]inner{"k": {A: caddy.Duration(time.Second)}},
		Raw:      json.RawMessage(`{"y":1,"x":2}`),
		Strs:     []string{"a"},
		Ints:     map[int]string{2: "b"},
		Headers:  map[string][]bool{"h": {true}},
		unexp:    1,
	}
	want := `{"deep":"1m0s","headers":{"h":[true]},"ints":{"2":"b"},"list":[{"z":"l"}],"map":{"k":{"a":"1s","z":""}},` +
		`"ptr":{"a":"1.5s","z":"p"},"raw":{"y":1,"x":2},"shadowed":"outer","strs":["a"],"zero":0}`
	if got := string(encode(nil, typedTree(&v))); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// With the adapter's cache of types: the same, the first time and
	// from the cache.
	a := &adapter{}
	for i := range 2 {
		if got := string(encode(nil, a.typedTree(&v))); got != want {
			t.Errorf("cached (%d): got  %s\nwant %s", i, got, want)
		}
	}
	if len(a.treeTypes.fields) < 3 {
		t.Errorf("%d struct types cached, want outer, base and inner", len(a.treeTypes.fields))
	}
}

// TestUpstreamTransportTyped: every transport setting of an upstream
// (connection-pool, timeouts, tls, http-version, the limits default)
// reaches its field of the adaptive package's Transport, the output
// decodes into it strictly, and nested durations are duration strings.
func TestUpstreamTransportTyped(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`limits { max-idle-connections-per-upstream 9; }
routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"
  connection-pool { max-connections 64; max-idle 16; idle-timeout-secs 30; }
  timeouts { connect-secs 3; request-secs 20; read 25; write-secs 26; }
  tls { sni "b.example"; insecure-skip-verify #true; client-cert "c.pem"; client-key "k.pem"; ca-cert "ca.pem"; }
  http-version { min-version 2; max-version 2; }
  circuit-breaker { failure-threshold 4; }
}; }`)
	h := proxyHandlerOf(t, out)
	if strings.Contains(string(h["transport"]), "000000000") {
		t.Errorf("a duration in nanoseconds: %s", h["transport"])
	}
	var tr adaptive.Transport
	dec := json.NewDecoder(strings.NewReader(string(h["transport"])))
	dec.DisallowUnknownFields()
	var m map[string]json.RawMessage
	_ = json.Unmarshal(h["transport"], &m)
	if string(m["protocol"]) != `"sentinel"` {
		t.Errorf("protocol %s", m["protocol"])
	}
	delete(m, "protocol")
	raw, _ := json.Marshal(m)
	dec = json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil {
		t.Fatal(err)
	}
	s := time.Second
	if tr.MaxConnsPerHost != 64 || tr.KeepAlive == nil || tr.KeepAlive.MaxIdleConnsPerHost != 16 || tr.KeepAlive.IdleConnTimeout != caddy.Duration(30*s) ||
		tr.DialTimeout != caddy.Duration(3*s) || tr.ResponseHeaderTimeout != caddy.Duration(20*s) || tr.ReadTimeout != caddy.Duration(25*s) || tr.WriteTimeout != caddy.Duration(26*s) {
		t.Errorf("transport %+v keep-alive %+v", tr, tr.KeepAlive)
	}
	if tls := tr.TLS; tls == nil || tls.ServerName != "b.example" || !tls.InsecureSkipVerify || tls.ClientCertificateFile != "c.pem" ||
		tls.ClientCertificateKeyFile != "k.pem" || string(tls.CARaw) != `{"pem_files":["ca.pem"],"provider":"file"}` {
		t.Errorf("tls %+v", tr.TLS)
	}
	if strings.Join(tr.Versions, ",") != "2" {
		t.Errorf("versions %v", tr.Versions)
	}
	var hc reverseproxy.HealthChecks
	if err := json.Unmarshal(h["health_checks"], &hc); err != nil || hc.Passive == nil || hc.Passive.MaxFails != 4 ||
		hc.Passive.FailDuration != caddy.Duration(30*s) || len(hc.Passive.UnhealthyStatus) != 11 {
		t.Errorf("health checks %s: %v", h["health_checks"], err)
	}

	// The limits default applies when the pool does not say.
	out, _ = mustAdapt(t, minimal+`limits { max-idle-connections-per-upstream 9; }
routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; }; }`)
	if got := string(proxyHandlerOf(t, out)["transport"]); got != `{"keep_alive":{"max_idle_conns_per_host":9},"protocol":"sentinel"}` {
		t.Errorf("transport %s", got)
	}
}

// TestRetryPolicyTyped: a route's retry policy maps onto
// reverseproxy.LoadBalancing (and decodes into it), wraps Caddy's own
// policies in sentinel_untried, and sets the route's per-attempt timeout
// on a copy of the upstream's transport, not on the upstream's.
func TestRetryPolicyTyped(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`routes {
  route "a" { matches { path-prefix "/a"; }; upstream "u"; retry-policy { max-attempts 3; backoff-base-ms 250; per-attempt-timeout "2s"; retryable-status-codes 502; }; }
  route "b" { matches { path-prefix "/b"; }; upstream "u"; }
}
upstreams { upstream "u" { target "127.0.0.1:1"; load-balancing "random"; timeouts { request-secs 20; }; }; }`)
	var lbs, transports []string
	for _, hs := range serverRoutes[map[string]json.RawMessage](t, out)["http"] {
		for _, h := range hs {
			if string(h["handler"]) == `"reverse_proxy"` {
				lbs = append(lbs, string(h["load_balancing"]))
				transports = append(transports, string(h["transport"]))
			}
		}
	}
	if len(lbs) != 2 {
		t.Fatalf("%d proxies in %s", len(lbs), out)
	}
	var lb reverseproxy.LoadBalancing
	if err := json.Unmarshal([]byte(lbs[0]), &lb); err != nil || lb.Retries != 2 || lb.TryInterval != caddy.Duration(250*time.Millisecond) || len(lb.RetryMatchRaw) != 2 {
		t.Errorf("load balancing %s: %v", lbs[0], err)
	}
	if !strings.Contains(lbs[0], `"selection_policy":{"inner":{"policy":"random"},"policy":"sentinel_untried"}`) || lbs[1] != `{"selection_policy":{"policy":"random"}}` {
		t.Errorf("selection policies: %v", lbs)
	}
	if !strings.Contains(transports[0], `"response_header_timeout":"2s"`) || !strings.Contains(transports[1], `"response_header_timeout":"20s"`) {
		t.Errorf("transports: %v", transports)
	}
}

// proxyHandlerOf is the first reverse_proxy handler of the output.
func proxyHandlerOf(t *testing.T, out []byte) map[string]json.RawMessage {
	t.Helper()
	for _, routes := range serverRoutes[map[string]json.RawMessage](t, out) {
		for _, hs := range routes {
			for _, h := range hs {
				if string(h["handler"]) == `"reverse_proxy"` {
					return h
				}
			}
		}
	}
	t.Fatalf("no reverse_proxy in %s", out)
	return nil
}

// TestAdminAPITyped: admin-api maps onto controlapi.Config (the output
// decodes into it strictly), with its default address; a repeated auth
// block adds its tokens.
func TestAdminAPITyped(t *testing.T) {
	out, warns := mustAdapt(t, minimal+`admin-api {
  auth { type "bearer"; token "t1" scope="read" name="ro"; token "t2"; }
  auth { token "t3"; }
  tls { cert-file "c.pem"; key-file "k.pem"; client-ca "ca.pem"; allowed-identities "ops"; }
  max-body-bytes 4096
  allowed-target-networks "10.0.0.0/8"
  state-file "/var/lib/sentinel/state.json"
}`)
	var cfg struct {
		Apps struct {
			Sentinel struct {
				API       json.RawMessage `json:"api"`
				StateFile string          `json:"state_file"`
			} `json:"sentinel"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var api controlapi.Config
	dec := json.NewDecoder(strings.NewReader(string(cfg.Apps.Sentinel.API)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&api); err != nil {
		t.Fatal(err)
	}
	if api.Listen != "127.0.0.1:9901" || len(api.Tokens) != 3 || api.Tokens[0].Name != "ro" || api.Tokens[0].Scopes[0] != "read" ||
		api.Tokens[1].Name != "token-2" && api.Tokens[1].Name != "" || api.Tokens[0].Token != "" || api.MaxBodyBytes != 4096 ||
		api.TLS == nil || api.TLS.ClientCAFile != "ca.pem" || api.TLS.AllowedIdentities[0] != "ops" || api.AllowedTargetNetworks[0] != "10.0.0.0/8" {
		t.Errorf("api %s", cfg.Apps.Sentinel.API)
	}
	if cfg.Apps.Sentinel.StateFile != "/var/lib/sentinel/state.json" {
		t.Errorf("state file %q", cfg.Apps.Sentinel.StateFile)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %s", warningsText(warns))
	}
}

// TestSystemTyped: the system block maps onto the http app's grace
// period and Caddy's admin config; a checked-only setting still reports
// a bad value.
func TestSystemTyped(t *testing.T) {
	src := `system { graceful-shutdown-timeout-secs 15; caddy-admin "off"; }
listeners { listener "http" { address "127.0.0.1:18080"; }; }`
	out, _ := mustAdapt(t, src)
	for _, want := range []string{`"admin":{"disabled":true}`, `"grace_period":"15s"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
	out, _ = mustAdapt(t, strings.Replace(src, `"off"`, `"localhost:2999"`, 1))
	if !strings.Contains(string(out), `"admin":{"listen":"localhost:2999"}`) {
		t.Errorf("admin listen: %s", out)
	}
	if _, _, err := adaptString(t, strings.Replace(src, "graceful", `route-cache-size "x"; graceful`, 1)); err == nil || !strings.Contains(err.Error(), "route-cache-size") {
		t.Errorf("bad route-cache-size: %v", err)
	}
}

// TestLoggingTyped: observability.logging maps onto caddy.Logging (the
// output decodes into it strictly): the error log is read over the
// default log, the access log is a log of its own with the sentinel_access
// encoder, and timestamps #false drops the time of the console encoder
// too.
func TestLoggingTyped(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`observability {
  metrics { address "127.0.0.1:19090"; }
  logging {
    level "warn"; format "pretty"; timestamps #false; file "/var/log/a.log"
    error-log { file "stderr"; level "error"; }
    access-log { file "stdout"; format "combined"; }
  }
}`)
	var cfg struct {
		Logging json.RawMessage `json:"logging"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var lg caddy.Logging
	dec := json.NewDecoder(strings.NewReader(string(cfg.Logging)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lg); err != nil {
		t.Fatal(err)
	}
	def, access := lg.Logs["default"], lg.Logs["sentinel_access"]
	if def == nil || access == nil {
		t.Fatalf("logs %s", cfg.Logging)
	}
	if def.Level != "ERROR" || string(def.WriterRaw) != `{"output":"stderr"}` || string(def.EncoderRaw) != `{"format":"sentinel_deferred","wrap":{"format":"console","time_key":"-"}}` ||
		len(def.Exclude) != 1 {
		t.Errorf("default log %s", cfg.Logging)
	}
	if string(access.WriterRaw) != `{"output":"stdout"}` || string(access.EncoderRaw) != `{"format":"sentinel_access","style":"combined"}` ||
		access.Include[0] != "http.log.access.sentinel_access" {
		t.Errorf("access log %s", cfg.Logging)
	}
	for _, want := range []string{`"logs":{"default_logger_name":"sentinel_access"}`, `"sentinel-metrics":{"automatic_https":{"disable":true},"listen":["127.0.0.1:19090"]`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
}

// TestListenerTLSTyped: a listener's TLS maps onto caddytls types: the
// server's connection policies and the tls app decode into them strictly,
// and the ACME storage is derived from the acme blocks (the first folder
// given; another one is warned about).
func TestListenerTLSTyped(t *testing.T) {
	out, warns := mustAdapt(t, `system { }
listeners {
  listener "a" { address "127.0.0.1:8443"; tls { cert-file "c.pem"; key-file "k.pem"; ca-file "ca.pem"; min-version "1.2"
    sni { hostnames "b.example"; acme { email "x@example.com"; domains "b.example"; storage "/s1"; eab { kid "k"; hmac-key "m"; }; challenge-type "http-01"; }; }; }; }
  listener "b" { address "127.0.0.1:8444"; tls { acme { email "x@example.com"; domains "c.example"; storage "/s2"; staging #true; renew-before-days 30; }; }; }
}`)
	var cfg struct {
		Storage json.RawMessage `json:"storage"`
		Apps    struct {
			TLS  json.RawMessage `json:"tls"`
			HTTP struct {
				Servers map[string]struct {
					Policies json.RawMessage `json:"tls_connection_policies"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	strict := func(raw json.RawMessage, v any) {
		t.Helper()
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
	}
	var pa caddytls.ConnectionPolicies
	strict(cfg.Apps.HTTP.Servers["a"].Policies, &pa)
	if len(pa) != 2 || pa[0].DefaultSNI != "b.example" || pa[1].CertSelection == nil || pa[1].CertSelection.AnyTag[0] != "sentinel-listener-a" ||
		pa[0].ProtocolMin != "tls1.2" || pa[1].ClientAuthentication == nil || pa[1].ClientAuthentication.Mode != "verify_if_given" {
		t.Errorf("policies of a: %s", cfg.Apps.HTTP.Servers["a"].Policies)
	}
	var app caddytls.TLS
	strict(cfg.Apps.TLS, &app)
	if app.Automation == nil || len(app.Automation.Policies) != 2 || app.Automation.Policies[1].RenewalWindowRatio != 30.0/90 ||
		!strings.Contains(string(app.Automation.Policies[0].IssuersRaw[0]), `"external_account":{"key_id":"k","mac_key":"m"}`) {
		t.Errorf("tls app: %s", cfg.Apps.TLS)
	}
	if string(cfg.Storage) != `{"module":"file_system","root":"/s1"}` || !strings.Contains(warningsText(warns), `only one ACME storage folder can be used; "/s1" is used`) {
		t.Errorf("storage %s, warnings %s", cfg.Storage, warningsText(warns))
	}
}

// TestUpstreamHTTPVersions: http-version gives the transport's versions
// from its settings and the upstream's TLS, and refuses the combinations
// that cannot work.
func TestUpstreamHTTPVersions(t *testing.T) {
	up := func(body string) string {
		return minimal + `routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; ` + body + `; }; }`
	}
	for body, want := range map[string]string{
		`http-version { max-version 1; }`:                                  `"versions":["1.1"]`,
		`http-version { min-version 1; }`:                                  `"versions":["1.1","2"]`,
		`http-version { min-version 2; }`:                                  `"versions":["h2c","2"]`,
		`http-version { h2c #true; }`:                                      `"versions":["h2c","2"]`,
		`tls { sni "x"; }; http-version { min-version 2; }`:                `"versions":["2"]`,
		`tls { sni "x"; }; http-version { min-version 3; max-version 3; }`: `"versions":["3"]`,
	} {
		out, _ := mustAdapt(t, up(body))
		if got := string(proxyHandlerOf(t, out)["transport"]); !strings.Contains(got, want) {
			t.Errorf("%s: transport %s, want %s", body, got, want)
		}
	}
	for body, want := range map[string]string{
		`http-version { max-version 3; }`:                `upstream "u": HTTP/3 to the upstream needs a tls block`,
		`tls { sni "x"; }; http-version { h2c #true; }`:  `upstream "u": h2c is HTTP/2 without TLS`,
		`http-version { min-version 2; max-version 1; }`: `upstream "u": http-version min-version 2 is above max-version 1`,
		`tls { client-cert "c.pem"; }`:                   `upstream "u": client-cert and client-key go together`,
	} {
		if _, _, err := adaptString(t, up(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
	_, warns := mustAdapt(t, up(`tls { sni "x"; }; http-version { max-version 3; }`))
	if !strings.Contains(warningsText(warns), "cannot fall back to HTTP/1-2") {
		t.Errorf("warnings: %s", warningsText(warns))
	}
}

// TestLegacySpellingGivesWay: when a setting is given in both spellings,
// the current one is used, wherever it comes in the block (as before the
// typed blocks).
func TestLegacySpellingGivesWay(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; retry-policy { backoff "2s"; backoff-base-ms 100; max-attempts 2; }; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; timeouts { connect-secs 3; connect 9; }; connection-pool { idle-timeout 7; idle-timeout-secs 8; }; }; }`)
	h := proxyHandlerOf(t, out)
	for _, want := range []string{`"dial_timeout":"3s"`, `"idle_timeout":"8s"`} {
		if !strings.Contains(string(h["transport"]), want) {
			t.Errorf("missing %s in %s", want, h["transport"])
		}
	}
	if !strings.Contains(string(h["load_balancing"]), `"try_interval":"2s"`) {
		t.Errorf("load balancing %s", h["load_balancing"])
	}
	out, _ = mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; timeouts { connect 9; }; }; }`)
	if h := proxyHandlerOf(t, out); !strings.Contains(string(h["transport"]), `"dial_timeout":"9s"`) {
		t.Errorf("legacy alone: %s", h["transport"])
	}
}

// TestListenerTLSMappedOnce: a listener's tls block is mapped once,
// though both its server and the tls app need it (its errors and
// warnings are reported once).
func TestListenerTLSMappedOnce(t *testing.T) {
	_, _, err := adaptString(t, `system { }
listeners { listener "a" { address "127.0.0.1:8443"; tls { cert-file "c.pem"; key-file "k.pem"; client-auth #true; }; }; }`)
	if err == nil || strings.Count(err.Error(), "client-auth #true needs ca-file") != 1 {
		t.Errorf("error %v", err)
	}
	_, warns := mustAdapt(t, `system { }
listeners { listener "a" { address "127.0.0.1:8443"; tls { cert-file "c.pem"; key-file "k.pem"; ocsp-stapling #false; }; }; }`)
	if strings.Count(warningsText(warns), "ocsp-stapling #false cannot be honoured") != 1 {
		t.Errorf("warnings %s", warningsText(warns))
	}
}

// TestTargetBlockTyped: a target's block form maps onto
// registry.TargetSpec, its settings win over the one-line form, and an
// unknown setting is reported once (before, by the walker and again by
// the target's own switch).
func TestTargetBlockTyped(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { load-balancing "weighted"; target "127.0.0.1:1" weight=3 { address "127.0.0.1:2"; weight 5; metadata { zone "a"; }; }; }; }`)
	if !strings.Contains(string(out), `"targets":[{"address":"127.0.0.1:2","weight":5}]`) {
		t.Errorf("targets: %s", out)
	}
	_, _, err := adaptString(t, minimal+`upstreams { upstream "u" { target { address "127.0.0.1:1"; wieght 2; }; }; }`)
	if err == nil || strings.Count(err.Error(), "wieght") != 1 {
		t.Errorf("error %v", err)
	}
}
