package kdladapter

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const rlHead = `system { }
listeners { listener "a" { address "127.0.0.1:8080"; }; listener "b" { address "127.0.0.1:8081"; request-timeout-secs 30; }; }
upstreams { upstream "u" { target "127.0.0.1:9000"; } }
`

// rateLimitHandlers returns the sentinel_rate_limit handlers of the
// route r in server s of the adapted config.
func rateLimitHandlers(t *testing.T, out []byte, server string, route int) []map[string]any {
	t.Helper()
	var hs []map[string]any
	for _, h := range serverRoutes[map[string]any](t, out)[server][route] {
		if h["handler"] == "sentinel_rate_limit" {
			hs = append(hs, h)
		}
	}
	return hs
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestRateLimitFilterMapping(t *testing.T) {
	out, ws := mustAdapt(t, rlHead+`
filters {
    filter "rl" {
        type "rate-limit"
        max-rps 2.5
        burst 4
        key "header:X-Api-Key"
        on-limit "delay"
        status-code 503
        message "later"
        max-delay-ms 250
        max-keys 500
        backend "redis"
        redis-url "redis://10.0.0.5:6379/2"
        redis-prefix "app:"
        redis-pool-size 3
        redis-timeout-ms 20
        redis-fallback-local #false
        memcached-url "memcache://ignored:1"
    }
    filter "mc" {
        type "rate-limit"
        backend "memcache"
        memcached-url "memcache://10.0.0.6:11211"
        memcached-fallback #false
        memcached-ttl-secs 3
    }
    filter "plain" { type "rate-limit"; redis-url "redis://x:1"; }
}
routes { route "r" { upstream "u"; filters "rl" "mc" "plain"; } }
`)
	hs := rateLimitHandlers(t, out, "a", 0)
	if len(hs) != 3 {
		t.Fatalf("%d rate limit handlers: %v", len(hs), hs)
	}
	want := []string{
		`{"backend":"redis","burst":4,"fallback_local":false,"handler":"sentinel_rate_limit","key":"header:X-Api-Key","max_delay":"250ms","max_keys":500,"max_rps":2.5,"message":"later","on_limit":"delay","redis":{"pool_size":3,"prefix":"app:","timeout":20000000,"url":"redis://10.0.0.5:6379/2"},"status_code":503,"zone":"route:r/filter:rl"}`,
		`{"backend":"memcached","fallback_local":false,"handler":"sentinel_rate_limit","memcached":{"url":"memcache://10.0.0.6:11211"},"memcached_ttl":"3s","zone":"route:r/filter:mc"}`,
		`{"handler":"sentinel_rate_limit","zone":"route:r/filter:plain"}`,
	}
	for i, h := range hs {
		if got := jsonOf(h); got != want[i] {
			t.Errorf("handler %d:\n got  %s\n want %s", i, got, want[i])
		}
	}
	if !strings.Contains(warningsText(ws), `filter "plain": redis-*/memcached-* settings have no effect`) {
		t.Errorf("no warning for redis-url without backend: %s", warningsText(ws))
	}
	// The copy of the route in the other listener's server (not merged:
	// its timeout differs) has the same zone: they share buckets.
	if jsonOf(rateLimitHandlers(t, out, "b", 0)) != jsonOf(hs) {
		t.Error("the route's copies differ")
	}
}

func TestRateLimitPoliciesAndGlobal(t *testing.T) {
	out, _ := mustAdapt(t, rlHead+`
rate-limits {
    default-rps 7
    default-burst 3
    key "path"
    global { max-rps 1000; burst 100; key "client_ip"; }
}
limits {
    max-requests-per-second-global 5000
    max-requests-per-second-per-client 50
    max-requests-per-second-per-route 300
}
routes {
    route "r" { upstream "u"; policies { rate-limit { requests-per-second 2; } } }
    route "s" { upstream "u"; policies { rate-limit { burst 9; key "route"; } } }
}
`)
	got := jsonOf(rateLimitHandlers(t, out, "a", 0))
	for _, want := range []string{
		`{"burst":100,"handler":"sentinel_rate_limit","key":"client-ip","max_rps":1000,"zone":"global"}`,
		`{"burst":5000,"handler":"sentinel_rate_limit","key":"global","max_rps":5000,"zone":"limits-global"}`,
		`{"burst":50,"handler":"sentinel_rate_limit","key":"client-ip","max_rps":50,"zone":"limits-per-client"}`,
		`{"burst":300,"handler":"sentinel_rate_limit","key":"route","max_rps":300,"zone":"route:r/limits"}`,
		`{"burst":3,"handler":"sentinel_rate_limit","key":"path","max_rps":2,"zone":"route:r/policy"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	if got := jsonOf(rateLimitHandlers(t, out, "a", 1)); !strings.Contains(got, `{"burst":9,"handler":"sentinel_rate_limit","key":"route","max_rps":7,"zone":"route:s/policy"}`) {
		t.Errorf("route s: %s", got)
	}
}

// TestRateLimitErrors: bad values are errors at their file:line:col.
func TestRateLimitErrors(t *testing.T) {
	const f = `filters { filter "f" { type "rate-limit"; `
	for _, tc := range []struct {
		src, at, want string // at: the text the error points to
	}{
		{f + `max-rps 0; } }`, `0;`, `max-rps 0: must be above 0`},
		{f + `burst 0; } }`, `0;`, `burst`},
		{f + `key "cookie"; } }`, `"cookie"`, `key "cookie": expected client-ip, path, route, client-ip-and-path, header:<Name>, global, tenant, tenant-and-client-ip`},
		{f + `key "header:"; } }`, `"header:"`, `key "header:": header:<Name> needs a header name`},
		{f + `on-limit "drop"; } }`, `"drop"`, `on-limit "drop" is not one of reject, delay, log-only`},
		{f + `status-code 200; } }`, `200`, `status-code`},
		{f + `backend "etcd"; } }`, `"etcd"`, `backend "etcd" is not one of local, redis, memcached, memcache`},
		{f + `redis-pool-size 0; } }`, `0;`, `redis-pool-size`},
		{f + `colour "red"; } }`, `colour`, `unknown setting "colour"`},
		{f + `} }` + "\n" + `rate-limits { global { burst 2; }; }`, `global`, `rate-limits: global needs max-rps`},
	} {
		line, col := 4, strings.Index(tc.src, tc.at)+1
		if nl := strings.Index(tc.src, "\n"); nl >= 0 && strings.Index(tc.src, tc.at) > nl {
			line, col = 5, strings.Index(tc.src[nl+1:], tc.at)+1
		}
		want := fmt.Sprintf("test.kdl:%d:%d: %s", line, col, tc.want)
		_, _, err := adaptString(t, rlHead+tc.src+"\nroutes { route \"r\" { upstream \"u\"; filters \"f\"; } }\n")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got  %v\n want %q", tc.src, err, want)
		}
	}
	// A route policy's bad value.
	src := `routes { route "r" { upstream "u"; policies { rate-limit { key "ip"; } } } }`
	_, _, err := adaptString(t, rlHead+src)
	if want := fmt.Sprintf(`test.kdl:4:%d: key "ip"`, strings.Index(src, `"ip"`)+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("policy key: %v, want %q", err, want)
	}
}

// TestRateLimitSpanOverflow: a rate limit whose bucket would span more
// than int64 nanoseconds (burst × 1s/rate + max delay; max-rps 1e-12
// wrapped to a negative interval that admitted everything) is an adapt
// error at the file:line:col of the setting, naming the KDL keys, in
// each place a rate limit is written (the handler's Provision refuses it
// too, with its JSON names).
func TestRateLimitSpanOverflow(t *testing.T) {
	const route = `routes { route "r" { upstream "u"; filters "f"; } }`
	filter := func(body string) string { return `filters { filter "f" { type "rate-limit"; ` + body + ` } }` }
	for _, tc := range []struct {
		name, src, at, want string // at: the text the error points to
	}{
		{"filter rate", filter(`max-rps 1e-12;`) + "\n" + route, `max-rps`,
			`filter "f": max-rps 1e-12, burst 10 and max-delay-ms 5000: a rate-limit bucket would span more than 73 years, overflowing its clock (lower burst or max-delay-ms, or raise max-rps)`},
		{"filter burst", filter(`burst 1073741824; max-rps 0.001;`) + "\n" + route, `max-rps`,
			`filter "f": max-rps 0.001, burst 1073741824 and max-delay-ms 5000: a rate-limit bucket would span`},
		// The delay tips it over: 2e18 ns of burst fits alone.
		{"filter delay", filter(`on-limit "delay"; max-delay-ms 1099511627776; max-rps 1e-9; burst 2;`) + "\n" + route, `max-rps`,
			`filter "f": max-rps 1e-09, burst 2 and max-delay-ms 1099511627776: a rate-limit bucket would span`},
		{"global", `rate-limits { global { max-rps 1e-12; } }` + "\n" + route + "\n" + filter(``), `max-rps`,
			`rate-limits global: max-rps 1e-12 and burst 10: a rate-limit bucket would span more than 73 years, overflowing its clock (lower burst, or raise max-rps)`},
		{"policy", `routes { route "r" { upstream "u"; policies { rate-limit { burst 5; requests-per-second 1e-12; } } } }`, `requests-per-second`,
			`policies rate-limit: requests-per-second 1e-12 and burst 5: a rate-limit bucket would span`},
		{"policy default", `routes { route "r" { upstream "u"; policies { rate-limit { key "path"; } } } }` + "\n" + `rate-limits { default-rps 1e-12; }`, `rate-limit {`,
			`policies rate-limit: rate-limits default-rps 1e-12 and burst 10: a rate-limit bucket would span`},
		{"limits", `limits { max-requests-per-second-per-client 1e-12; }` + "\n" + route + "\n" + filter(``), `1e-12`,
			`limits: max-requests-per-second-per-client 1e-12: a rate-limit bucket would span more than 73 years, overflowing its clock (raise max-requests-per-second-per-client)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, col := 4, strings.Index(tc.src, tc.at)+1
			if nl := strings.Index(tc.src, "\n"); nl >= 0 && strings.Index(tc.src, tc.at) > nl {
				t.Fatal("at must be on the first line")
			}
			want := fmt.Sprintf("test.kdl:%d:%d: %s", line, col, tc.want)
			_, _, err := adaptString(t, rlHead+tc.src+"\n")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("\n got  %v\n want %q", err, want)
			}
			if strings.Count(err.Error(), "would span") != 1 {
				t.Errorf("reported more than once: %v", err)
			}
		})
	}
	// At the edge: a rate that fits is not refused.
	mustAdapt(t, rlHead+filter(`max-rps 1e-9; burst 2;`)+"\n"+route+"\n"+`limits { max-requests-per-second-global 1e-9; }`+"\n")
}
