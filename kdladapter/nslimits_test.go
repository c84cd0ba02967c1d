package kdladapter

import (
	"strings"
	"testing"
)

// TestNamespaceLimitsErrors: bad values in a namespace's or service's
// limits are reported once, at their file:line:col.
func TestNamespaceLimitsErrors(t *testing.T) {
	ns := func(body string) string { return nsBase + body }
	for _, tc := range []struct{ name, src, want string }{
		{"body size", ns(`namespace "a" { limits { max-body-size "lots"; }; }`),
			`test.kdl:6:40: max-body-size: invalid size "lots"`},
		{"in flight zero", ns(`namespace "a" { limits { max-in-flight-requests 0; }; }`),
			`test.kdl:6:49: max-in-flight-requests must be between 1 and`},
		{"negative rate", ns(`namespace "a" { service "s" { limits { max-requests-per-second-global -1; }; }; }`),
			`test.kdl:6:71: max-requests-per-second-global -1: must be above 0`},
		{"rate overflowing a bucket's clock", ns(`namespace "a" { limits { max-requests-per-second-per-client 1e-12; }; }`),
			`test.kdl:6:61: limits: max-requests-per-second-per-client 1e-12: a rate-limit bucket would span more than 73 years`},
		{"header size too small", ns(`namespace "a" { limits { max-header-size-bytes 10; }; }`),
			`test.kdl:6:48: max-header-size-bytes`},
		{"unknown key", ns(`namespace "a" { limits { max-bodysize 1; }; }`),
			`test.kdl:6:26: unknown setting "max-bodysize" in namespace.limits (did you mean "max-body-size"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := adaptString(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
			if strings.Count(err.Error(), tc.want) != 1 {
				t.Errorf("reported more than once: %v", err)
			}
		})
	}
}

// TestNamespaceLimitsWarnings: the keys a namespace cannot honour are
// warned about with the key and the reason.
func TestNamespaceLimitsWarnings(t *testing.T) {
	_, warns := mustAdapt(t, nsBase+`namespace "a" {
    limits { max-header-size-bytes 4096; max-total-connections 10; max-memory-percent 50; }
    routes { route "r" { upstream "auth"; }; }
}`)
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`test.kdl:7 (namespace.limits.max-header-size-bytes): namespace "a" has no listener of its own`,
		`test.kdl:7 (namespace.limits.max-total-connections): accepted but has no effect: connections are accepted before a request says its tenant`,
		`test.kdl:7 (namespace.limits.max-memory-percent): accepted but has no effect: memory is the process's`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %s:\n%s", want, all)
		}
	}
	// A namespace's listener takes its header limit: no warning.
	_, warns = mustAdapt(t, nsBase+`namespace "a" {
    limits { max-header-size-bytes 4096; }
    listeners { listener "own" { address "127.0.0.1:18090"; }; }
    routes { route "r" { upstream "auth"; }; }
}`)
	for _, w := range warns {
		if strings.Contains(w.String(), "listener of its own") {
			t.Errorf("warned: %s", w)
		}
	}
}

// TestNamespaceLimitsOverride: service over namespace over global, for
// the per-item limits; caps stack.
func TestNamespaceLimitsOverride(t *testing.T) {
	out, _ := mustAdapt(t, `
system { }
limits { max-body-size 100; max-requests-per-second-global 1000; }
listeners {
    listener "http" { address "127.0.0.1:18080"; }
    listener "bound" { address "127.0.0.1:18082"; namespace "a"; }
}
routes { route "g" { matches { path "/g"; }; upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:9001"; }; }
namespace "a" {
    limits { max-body-size 200; max-header-size 2048; max-in-flight-requests 7; }
    routes { route "r" { matches { path "/r"; }; upstream "u"; }; }
    service "s" {
        limits { max-body-size 300; }
        routes { route "x" { matches { path "/x"; }; upstream "u"; policies { max-body-size 400; }; }; }
        routes { route "y" { matches { path "/y"; }; upstream "u"; }; }
    }
}
`)
	s := string(out)
	for _, frag := range []string{
		`"max_header_bytes":2048`,
		`{"handler":"request_body","max_size":100}`,
		`{"handler":"request_body","max_size":200}`,
		`{"handler":"request_body","max_size":300}`,
		`{"handler":"request_body","max_size":400}`,
		`{"handler":"sentinel_inflight","max":7,"zone":"namespace:a"}`,
		`"zone":"limits-global"`,
	} {
		if !strings.Contains(s, frag) {
			t.Errorf("output lacks %s", frag)
		}
	}
	// The namespace's in-flight cap is on its routes only (r, and its
	// service's x and y), in both servers that serve them (http serves
	// every route, bound a's).
	if n := strings.Count(s, `"zone":"namespace:a"`); n != 6 {
		t.Errorf("in-flight handlers: %d, want 6", n)
	}
	// The global cap stays on every route: g, r, x, y in http; r, x, y in
	// bound (which does not serve the global g).
	if n := strings.Count(s, `"zone":"limits-global"`); n != 7 {
		t.Errorf("global caps: %d, want 7", n)
	}
}

// TestGlobalInFlightLimit: the global limits' max-in-flight-requests puts
// one sentinel_inflight handler (zone "global") on every route, after the
// namespace's own cap, without a warning; a bad value is an error at its
// place, reported once.
func TestGlobalInFlightLimit(t *testing.T) {
	out, warns := mustAdapt(t, `
system { }
limits { max-in-flight-requests 50; }
listeners { listener "http" { address "127.0.0.1:18080"; }; }
upstreams { upstream "u" { target "127.0.0.1:9001"; }; }
routes {
    route "g" { matches { path "/g"; }; upstream "u"; }
    route "h" { matches { path "/health"; }; builtin-handler "health"; }
}
namespace "a" {
    limits { max-in-flight-requests 7; }
    routes { route "r" { matches { path "/r"; }; upstream "u"; }; }
}
`)
	for _, w := range warns {
		if strings.Contains(w.String(), "max-in-flight-requests") {
			t.Errorf("warned: %s", w)
		}
	}
	s := string(out)
	global := `{"handler":"sentinel_inflight","max":50,"zone":"global"}`
	if n := strings.Count(s, global); n != 3 {
		t.Errorf("%d global in-flight handlers, want one per route (3)", n)
	}
	if i, j := strings.Index(s, `"zone":"namespace:a"`), strings.LastIndex(s, global); i < 0 || j < i {
		t.Errorf("the namespace's cap is not before the global one on its route")
	}
	_, _, err := adaptString(t, `
system { }
limits { max-in-flight-requests 0; }
listeners { listener "http" { address "127.0.0.1:18080"; }; }
upstreams { upstream "u" { target "127.0.0.1:9001"; }; }
routes { route "a" { upstream "u"; }; route "b" { matches { path "/b"; }; upstream "u"; }; }
`)
	want := "test.kdl:3:33: max-in-flight-requests must be between 1 and"
	if err == nil || strings.Count(err.Error(), want) != 1 {
		t.Errorf("got %v, want %q once", err, want)
	}
}
