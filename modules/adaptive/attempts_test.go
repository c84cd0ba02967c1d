package adaptive

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// proxiedReq is a request as the proxy hands it to a policy: with the
// request variables and extra log fields of Caddy's server.
func proxiedReq(ip string) *http.Request {
	r := reqFrom(ip)
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, new(caddyhttp.ExtraLogFields))
	return r.WithContext(ctx)
}

// retryPolicies are every policy of this package, and Caddy's behind
// sentinel_untried, on the registry upstream id.
func retryPolicies(id string) map[string]reverseproxy.Selector {
	untried := func(inner string) *Untried {
		return &Untried{InnerRaw: json.RawMessage(inner)}
	}
	return map[string]reverseproxy.Selector{
		"sentinel_weighted":          &Weighted{Upstream: id},
		"adaptive":                   &Adaptive{Upstream: id},
		"p2c":                        &P2C{Upstream: id},
		"peak_ewma":                  &PeakEWMA{Upstream: id},
		"weighted_least_connections": &WeightedLeastConnections{Upstream: id},
		"consistent_hash":            &ConsistentHash{Upstream: id},
		"consistent_hash unbounded":  &ConsistentHash{Upstream: id, Unbounded: true},
		"consistent_hash header":     &ConsistentHash{Upstream: id, Key: "header", KeyName: "X-Key"},
		"maglev":                     &Maglev{Upstream: id},
		"maglev header":              &Maglev{Upstream: id, Key: "header", KeyName: "X-Key"},
		"locality_aware":             &LocalityAware{Upstream: id, Zone: "z1", Zones: map[string]string{"rt-a:1": "z1", "rt-b:1": "z2", "rt-c:1": "z2"}},
		"deterministic_subset":       &DeterministicSubset{Upstream: id, SubsetSize: 2},
		"untried round_robin":        untried(`{"policy":"round_robin"}`),
		"untried least_conn":         untried(`{"policy":"least_conn"}`),
		"untried random":             untried(`{"policy":"random"}`),
		"untried client_ip_hash":     untried(`{"policy":"client_ip_hash"}`),
		"untried cookie":             untried(`{"policy":"cookie","fallback":{"policy":"round_robin"}}`),
		"untried default":            new(Untried),
	}
}

// TestRetryGoesElsewhere: whatever the policy, once a request was sent to
// a target, a retry goes to another available target, with a dead
// target's weight the highest; when every target was tried, or the
// others are unavailable, a tried one is chosen rather than none.
func TestRetryGoesElsewhere(t *testing.T) {
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	reconcile(t, "rt", map[string]int{"rt-a:1": 5, "rt-b:1": 1, "rt-c:1": 1})
	for name, p := range retryPolicies("rt") {
		t.Run(name, func(t *testing.T) {
			if err := p.(caddy.Provisioner).Provision(ctx); err != nil {
				t.Fatal(err)
			}
			if v, ok := p.(caddy.Validator); ok {
				if err := v.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			if c, ok := p.(caddy.CleanerUpper); ok {
				defer c.Cleanup()
			}
			pool := testPool("rt-a:1", "rt-b:1", "rt-c:1")
			for n := range 60 {
				r := proxiedReq("10.9.0." + itoa(n%7))
				r.Header.Set("X-Key", itoa(n))
				first := p.Select(pool, r, httptest.NewRecorder())
				if first == nil {
					t.Fatal("first attempt: nothing selected")
				}
				markTried(r, first.Dial)
				second := p.Select(pool, r, httptest.NewRecorder())
				if second == nil || second == first {
					t.Fatalf("request %d: retry after %s went to %v", n, first.Dial, second)
				}
				markTried(r, second.Dial)
				third := p.Select(pool, r, httptest.NewRecorder())
				if third == nil || third == first || third == second {
					t.Fatalf("request %d: third attempt after %s, %s went to %v", n, first.Dial, second.Dial, third)
				}
				markTried(r, third.Dial)
				if p.Select(pool, r, httptest.NewRecorder()) == nil {
					t.Fatalf("request %d: every target tried: nothing selected", n)
				}
				if got := Tried(r); len(got) != 3 || got[0] != first.Dial {
					t.Fatalf("Tried = %v", got)
				}
			}
			// Tried b, a unavailable: c; then only b is left: b.
			setAvailable(pool[0], false)
			defer setAvailable(pool[0], true)
			r := proxiedReq("10.9.1.1")
			markTried(r, "rt-b:1")
			if u := p.Select(pool, r, httptest.NewRecorder()); u == nil || u.Dial != "rt-c:1" {
				t.Fatalf("tried b, a down: got %v, want rt-c:1", u)
			}
			setAvailable(pool[2], false)
			defer setAvailable(pool[2], true)
			if u := p.Select(pool, r, httptest.NewRecorder()); u == nil || u.Dial != "rt-b:1" {
				t.Fatalf("tried b, a and c down: got %v, want rt-b:1", u)
			}
		})
	}
}

// TestMarkTried counts the attempts in the access log fields and ignores
// requests that did not come through Caddy's server.
func TestMarkTried(t *testing.T) {
	r := proxiedReq("10.0.0.1")
	if Tried(r) != nil || triedOf(nil) != nil {
		t.Fatal("tried before any attempt")
	}
	markTried(r, "a:1")
	markTried(r, "b:1")
	markTried(r, "c:1")
	if got := Tried(r); len(got) != 3 || got[2] != "c:1" {
		t.Fatalf("Tried = %v", got)
	}
	plain := reqFrom("10.0.0.1")
	markTried(plain, "a:1")
	if Tried(plain) != nil {
		t.Fatal("a request without variables has attempts")
	}
}

// TestUntriedCaddyfile reads the wrapper from a Caddyfile.
func TestUntriedCaddyfile(t *testing.T) {
	var s Untried
	d := caddyfile.NewTestDispenser("sentinel_untried cookie lb {\n fallback round_robin\n}")
	if err := s.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	var inner struct {
		Policy, Name string
		Fallback     struct{ Policy string }
	}
	if err := json.Unmarshal(s.InnerRaw, &inner); err != nil || inner.Policy != "cookie" || inner.Name != "lb" || inner.Fallback.Policy != "round_robin" {
		t.Fatalf("inner: %s (%v)", s.InnerRaw, err)
	}
	for _, bad := range []string{`sentinel_untried`, `sentinel_untried sentinel_untried random`, `sentinel_untried nope`} {
		var s Untried
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	bad := &Untried{InnerRaw: json.RawMessage(`{"policy":"nope"}`)}
	if err := bad.Provision(ctx); err == nil {
		t.Error("unknown inner policy: no error")
	}
}

// TestForwardedIdentity rewrites X-Real-IP and removes Forwarded from an
// untrusted peer, and leaves them from a trusted one.
func TestForwardedIdentity(t *testing.T) {
	mk := func(trusted bool, ip string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Real-Ip", "203.0.113.9")
		r.Header.Set("Forwarded", "for=203.0.113.9")
		vars := map[string]any{caddyhttp.TrustedProxyVarKey: trusted, caddyhttp.ClientIPVarKey: ip}
		return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	}
	r := mk(false, "10.0.0.1")
	forwardedIdentity(r, nil)
	if r.Header.Get("X-Real-Ip") != "10.0.0.1" || r.Header.Get("Forwarded") != "" {
		t.Errorf("untrusted: %v", r.Header)
	}
	r = mk(false, "")
	forwardedIdentity(r, nil)
	if len(r.Header.Values("X-Real-Ip")) != 0 {
		t.Errorf("untrusted, no client IP: %v", r.Header)
	}
	r = mk(true, "198.51.100.4")
	forwardedIdentity(r, nil)
	if r.Header.Get("X-Real-Ip") != "203.0.113.9" || r.Header.Get("Forwarded") != "for=203.0.113.9" {
		t.Errorf("trusted: %v", r.Header)
	}
	r.Header.Del("X-Real-Ip")
	forwardedIdentity(r, nil)
	if r.Header.Get("X-Real-Ip") != "198.51.100.4" {
		t.Errorf("trusted, no X-Real-IP: %v", r.Header)
	}

	// With the request's attempts, the value is held there: no
	// allocation, and a client's several values are replaced by one.
	r = mk(false, "10.0.0.2")
	r.Header.Add("X-Real-Ip", "203.0.113.10")
	a := markTried(r, "a:1")
	if n := testing.AllocsPerRun(50, func() { forwardedIdentity(r, a) }); n != 0 {
		t.Errorf("%.1f allocations", n)
	}
	if v := r.Header.Values("X-Real-Ip"); len(v) != 1 || v[0] != "10.0.0.2" || a.realIP[0] != "10.0.0.2" {
		t.Errorf("with attempts: %v", v)
	}
}
