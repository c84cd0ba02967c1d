package adaptive

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func reqFrom(ip string) *http.Request {
	r := httptest.NewRequest("GET", "/p", nil)
	r.RemoteAddr = ip + ":5555"
	return r
}

func addrList(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d:80", prefix, i)
	}
	return out
}

// hashPolicies are the two hashing policies, provisioned.
func hashPolicies(t *testing.T, key, name string) map[string]reverseproxy.Selector {
	return map[string]reverseproxy.Selector{
		"consistent_hash": provision(t, &ConsistentHash{Key: key, KeyName: name}, nil),
		"maglev":          provision(t, &Maglev{Key: key, KeyName: name}, nil),
	}
}

// TestHashingStable: the same key goes to the same target; keys spread;
// removing a target moves only its keys (mostly) and an unavailable
// target's keys go elsewhere.
func TestHashingStable(t *testing.T) {
	for name, s := range hashPolicies(t, "", "") {
		addrs := addrList("hs-"+name, 10)
		pool := testPool(addrs...)
		owner := map[string]string{}
		spread := map[string]int{}
		for i := range 2000 {
			ip := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
			u := s.Select(pool, reqFrom(ip), nil)
			owner[ip] = u.Dial
			spread[u.Dial]++
			if again := s.Select(pool, reqFrom(ip), nil); again != u {
				t.Fatalf("%s: %s moved", name, ip)
			}
		}
		for _, a := range addrs {
			if spread[a] < 100 || spread[a] > 320 {
				t.Errorf("%s: uneven spread %v", name, spread)
				break
			}
		}
		// Remove target 3: only its keys move (maglev: ~all others stay).
		smaller := testPool(append(append([]string{}, addrs[:3]...), addrs[4:]...)...)
		moved := 0
		for ip, a := range owner {
			if a == addrs[3] {
				continue
			}
			if s.Select(smaller, reqFrom(ip), nil).Dial != a {
				moved++
			}
		}
		if moved > len(owner)/20 {
			t.Errorf("%s: %d of %d keys moved when one target left", name, moved, len(owner))
		}
		// Unavailable: its keys go elsewhere, the others stay.
		setAvailable(pool[5], false)
		moved = 0
		for ip, a := range owner {
			got := s.Select(pool, reqFrom(ip), nil).Dial
			if got == addrs[5] {
				t.Fatalf("%s: unavailable target chosen", name)
			}
			if a != addrs[5] && got != a {
				moved++
			}
		}
		if moved > 0 {
			t.Errorf("%s: %d keys of available targets moved", name, moved)
		}
		for _, u := range pool {
			setAvailable(u, false)
		}
		if s.Select(pool, reqFrom("1.2.3.4"), nil) != nil {
			t.Errorf("%s: none available", name)
		}
	}
}

// TestHashingKeys: header, cookie and path keys; missing keys go to a
// random target.
func TestHashingKeys(t *testing.T) {
	addrs := addrList("hk", 8)
	for _, c := range []struct{ key, name string }{{keyHeader, "x-user"}, {keyCookie, "session"}, {keyPath, ""}} {
		for pname, s := range hashPolicies(t, c.key, c.name) {
			pool := testPool(addrs...)
			mk := func(v string) *http.Request {
				r := httptest.NewRequest("GET", "/"+v, nil)
				r.Header.Set("X-User", v)
				r.Header.Add("Cookie", "a=1; session=\""+v+"\"; b=2")
				return r
			}
			for _, v := range []string{"alice", "bob", "carol"} {
				first := s.Select(pool, mk(v), nil)
				for range 5 {
					if s.Select(pool, mk(v), nil) != first {
						t.Fatalf("%s/%s: %s moved", pname, c.key, v)
					}
				}
			}
			if c.key == keyPath {
				continue
			}
			seen := map[string]bool{}
			for range 200 {
				seen[s.Select(pool, httptest.NewRequest("GET", "/", nil), nil).Dial] = true
			}
			if len(seen) < 4 {
				t.Errorf("%s/%s: requests without a key not spread: %v", pname, c.key, seen)
			}
		}
	}
}

// TestConsistentHashBoundedLoad: an owner above load_factor × average is
// passed over.
func TestConsistentHashBoundedLoad(t *testing.T) {
	addrs := addrList("cb", 4)
	pool := testPool(addrs...)
	s := provision(t, &ConsistentHash{Hash: hashFNV}, nil)
	owner := s.Select(pool, reqFrom("9.9.9.9"), nil).Dial
	inflight(t, owner, 10)
	defer inflight(t, owner, 0)
	// average (10+1)/4 ≈ 2.75 × 1.25 → limit 4: the owner is over.
	if got := s.Select(pool, reqFrom("9.9.9.9"), nil).Dial; got == owner {
		t.Fatal("overloaded owner chosen")
	}
	unbounded := provision(t, &ConsistentHash{Hash: hashFNV, Unbounded: true}, nil)
	if got := unbounded.Select(pool, reqFrom("9.9.9.9"), nil).Dial; got != owner {
		t.Fatal("unbounded: owner not chosen")
	}
}

func TestRequestKeys(t *testing.T) {
	r := httptest.NewRequest("GET", "/x", nil)
	r.RemoteAddr = "[2001:db8::1]:443"
	k, _ := newRequestKey("", "")
	if got, ok := k.of(r); !ok || got != "2001:db8::1" {
		t.Errorf("v6: %q", got)
	}
	vars := map[string]any{caddyhttp.ClientIPVarKey: "203.0.113.7"}
	r2 := r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	if got, _ := k.of(r2); got != "203.0.113.7" {
		t.Errorf("client ip var: %q", got)
	}
	r.RemoteAddr = ""
	if _, ok := k.of(r); ok {
		t.Error("no address")
	}
	if _, ok := k.of(nil); ok {
		t.Error("nil request")
	}
	for _, a := range []string{"::1", "[::1", "host"} {
		if stripPort(a) != a {
			t.Errorf("stripPort(%q)", a)
		}
	}
	if v, ok := cookieValue([]string{"a=1;b=2", "c=; d=4"}, "d"); !ok || v != "4" {
		t.Errorf("cookie: %q", v)
	}
	if _, ok := cookieValue([]string{"c="}, "c"); ok {
		t.Error("empty cookie")
	}
	for _, bad := range [][2]string{{"client_ip", "x"}, {"path", "x"}, {"header", ""}, {"cookie", ""}, {"body", ""}} {
		if _, err := newRequestKey(bad[0], bad[1]); err == nil {
			t.Errorf("%v: expected an error", bad)
		}
	}
	if _, err := newHasher("md5"); err == nil {
		t.Error("bad hash accepted")
	}
	if fnv1a("") != 14695981039346656037 || fnv1a("a") != 0xaf63dc4c8601ec8c {
		t.Error("fnv1a")
	}
}

func TestMaglevTable(t *testing.T) {
	addrs := addrList("mt", 7)
	table := maglevTable(addrs, 65537)
	own := make([]int, len(addrs))
	for _, o := range table {
		own[o]++
	}
	for i, n := range own {
		if n < 65537/7-200 || n > 65537/7+200 {
			t.Errorf("target %d owns %d entries", i, n)
		}
	}
	if len(maglevTable(nil, 7)) != 7 {
		t.Error("empty table")
	}
	if !isPrime(65537) || isPrime(65536) || isPrime(1) {
		t.Error("isPrime")
	}
}

func TestHashingConfig(t *testing.T) {
	var ch ConsistentHash
	if err := ch.UnmarshalCaddyfile(caddyfile.NewTestDispenser("consistent_hash api {\n key header\n key_name X-User\n vnodes 50\n hash fnv\n load_factor 1.5\n bounded off\n}")); err != nil {
		t.Fatal(err)
	}
	if ch.Upstream != "api" || ch.Key != "header" || ch.KeyName != "X-User" || ch.VNodes != 50 || ch.Hash != "fnv" || ch.LoadFactor != 1.5 || !ch.Unbounded {
		t.Fatalf("parsed %+v", &ch)
	}
	var mg Maglev
	if err := mg.UnmarshalCaddyfile(caddyfile.NewTestDispenser("maglev {\n key cookie\n key_name sid\n table_size 251\n}")); err != nil {
		t.Fatal(err)
	}
	if mg.Key != "cookie" || mg.KeyName != "sid" || mg.TableSize != 251 {
		t.Fatalf("parsed %+v", &mg)
	}
	for _, bad := range []*ConsistentHash{{VNodes: -1}, {LoadFactor: 0.5}} {
		bad.Provision(testCtx)
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	for _, bad := range []*ConsistentHash{{Key: "body"}, {Hash: "md5"}} {
		if bad.Provision(testCtx) == nil {
			t.Errorf("%+v provisioned", bad)
		}
	}
	if (&Maglev{Key: "body"}).Provision(testCtx) == nil {
		t.Error("maglev bad key provisioned")
	}
	m := &Maglev{TableSize: 65536}
	m.Provision(testCtx)
	if m.Validate() == nil {
		t.Error("non-prime table accepted")
	}
}
