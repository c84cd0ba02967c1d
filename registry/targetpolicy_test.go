package registry

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestTargetPolicyRefuse(t *testing.T) {
	p := &TargetPolicy{
		Own:   func() []string { return []string{":8080", "localhost:9000", "10.0.0.5:443", "0.0.0.0:7000", "bad"} },
		Local: func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("10.0.0.9")} },
	}
	for _, c := range []struct {
		ip   string
		port int
		want string // substring of the reason; "" allowed
	}{
		{"203.0.113.7", 80, ""},
		{"127.0.0.1", 80, "loopback"},
		{"::ffff:127.0.0.1", 80, "loopback"},
		{"169.254.169.254", 80, "link-local"},
		{"fe80::1%eth0", 80, "link-local"},
		{"0.0.0.0", 80, "unspecified"},
		{"239.1.1.1", 80, "multicast"},
		{"10.0.0.9", 8080, "own listeners"},  // wildcard listener, local address
		{"10.0.0.8", 8080, ""},               // not local
		{"127.0.0.2", 9000, "own listeners"}, // localhost listener
		{"10.0.0.5", 443, "own listeners"},   // exact
		{"10.0.0.9", 7000, "own listeners"},  // unspecified host
		{"10.0.0.5", 444, ""},
	} {
		if got := p.Refuse(netip.MustParseAddr(c.ip), c.port); c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("Refuse(%s, %d) = %q, want %q", c.ip, c.port, got, c.want)
		}
	}
	allowed := &TargetPolicy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if got := allowed.Refuse(netip.MustParseAddr("127.0.0.1"), 80); got != "" {
		t.Errorf("allowed network refused: %s", got)
	}
	if got := allowed.Refuse(netip.MustParseAddr("203.0.113.7"), 80); !strings.Contains(got, "not in the allowed target networks") {
		t.Errorf("outside the allowed networks: %q", got)
	}
	// The system's interfaces when Local is nil: loopback is local.
	sys := &TargetPolicy{Own: func() []string { return []string{":1"} }}
	if got := sys.Refuse(netip.MustParseAddr("127.0.0.1"), 1); !strings.Contains(got, "own listeners") {
		t.Errorf("system interfaces: %q", got)
	}
	if len(InterfaceAddrs()) == 0 {
		t.Log("no interface addresses")
	}
}

// TestCheckDial: only the API's host-name targets are checked at dial
// time, against the running config's policy (the default one without).
func TestCheckDial(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("u", "cfg.example:80", "10.1.1.1:80")}, nil)
	loop := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}
	if r.Guarded("cfg.example:80") || r.CheckDial("cfg.example:80", loop) != nil {
		t.Fatal("a config target is checked")
	}
	if _, err := r.AddTarget("u", Target{Address: "api.example:80", Weight: 1}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddTarget("u", Target{Address: "10.2.2.2:80", Weight: 1}, 0); err != nil {
		t.Fatal(err)
	}
	if r.Guarded("10.2.2.2:80") || r.Guarded("cfg.example:80") || !r.Guarded("api.example:80") {
		t.Fatal("guarded set wrong")
	}
	// The default policy: loopback refused, a public address passes.
	err := r.CheckDial("api.example:80", loop)
	var refused *DialRefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "api.example:80") || !strings.Contains(err.Error(), "127.0.0.1:80") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("loopback: %v", err)
	}
	if err := r.CheckDial("api.example:80", &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 80}); err != nil {
		t.Fatalf("public address: %v", err)
	}
	if err := r.CheckDial("api.example:80", &net.UnixAddr{Name: "/x", Net: "unix"}); err == nil {
		t.Fatal("a non-IP remote passed")
	}
	if err := r.CheckDial("api.example:80", nil); err == nil {
		t.Fatal("no remote passed")
	}
	if err := r.CheckDial("api.example:80", fakeAddr("[::ffff:169.254.169.254]:80")); err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Fatalf("metadata service: %v", err)
	}
	if n := r.DialsRefused(); n != 4 {
		t.Errorf("DialsRefused = %d, want 4", n)
	}
	// The API's policy: the allowed networks apply.
	p := &TargetPolicy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	r.SetTargetPolicy(p)
	if r.TargetPolicyInUse() != p || r.CheckDial("api.example:80", loop) != nil {
		t.Fatal("the set policy is not applied")
	}
	r.SetTargetPolicy(nil)
	if r.TargetPolicyInUse() != defaultTargetPolicy {
		t.Fatal("nil does not restore the default policy")
	}
	// Removing the target stops the check; no API host names: no set.
	if _, err := r.RemoveTarget("u", "api.example:80", 0); err != nil {
		t.Fatal(err)
	}
	if r.Guarded("api.example:80") || r.guard.names.Load() != nil {
		t.Fatal("a removed target is still checked")
	}
}

// fakeAddr is a net.Addr of another type than *net.TCPAddr.
type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// TestGuardContext: a context carries the dial check of a guarded
// target only.
func TestGuardContext(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("u", "cfg.example:80")}, nil)
	if _, err := r.AddTarget("u", Target{Address: "api.example:80", Weight: 1}, 0); err != nil {
		t.Fatal(err)
	}
	loop := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}
	ctx := context.Background()
	if r.GuardContext(ctx, "cfg.example:80") != ctx || CheckDialIn(ctx, loop) != nil {
		t.Fatal("a config target's context carries a check")
	}
	if err := CheckDialIn(r.GuardContext(ctx, "api.example:80"), loop); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("API target: %v", err)
	}
}

// TestStoredTargetsAreCheckedAtDialTime: a saved state (a state file, a
// fleet store's etcd key or ConfigMap, the operator's SentinelUpstreams)
// is not checked by the API, and its writer chooses the origin of every
// target: its loopback or link-local IP addresses, labelled api or
// config, are refused at dial time, while the config's own targets and
// allowed addresses stay unchecked; a policy allowing a network lets its
// addresses through.
func TestStoredTargetsAreCheckedAtDialTime(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("cfg", "10.1.1.1:80", "127.0.0.1:81")}, nil)
	st := `{"version":1,"upstreams":[` +
		`{"id":"cfg","origin":"config","replace":true,"override":[` +
		`{"address":"10.1.1.1:80","weight":1,"state":"active","origin":"config"},` +
		`{"address":"127.0.0.1:81","weight":1,"state":"active","origin":"config"},` +
		`{"address":"127.0.0.1:2019","weight":1,"state":"active","origin":"config"}]},` +
		`{"id":"new","origin":"api","override":[` +
		`{"address":"169.254.169.254:80","weight":1,"state":"active","origin":"api"},` +
		`{"address":"[::ffff:127.0.0.1]:9901","weight":1,"state":"active","origin":"discovery"},` +
		`{"address":"203.0.113.7:80","weight":1,"state":"active","origin":"api"}]}]}`
	if err := r.Restore([]byte(st)); err != nil {
		t.Fatal(err)
	}
	remote := func(a string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(a)) }
	for _, a := range []string{"127.0.0.1:2019", "169.254.169.254:80", "[::ffff:127.0.0.1]:9901"} {
		ap := netip.MustParseAddrPort(a)
		if !r.Guarded(a) {
			t.Errorf("%s (from the state) is not checked at dial time", a)
		}
		if err := r.CheckDial(a, remote(ap.String())); err == nil {
			t.Errorf("%s: a dial passed", a)
		}
	}
	// The config's targets (its own choice, loopback included) and an
	// allowed address pass unchecked.
	for _, a := range []string{"10.1.1.1:80", "127.0.0.1:81", "203.0.113.7:80"} {
		if r.Guarded(a) {
			t.Errorf("%s is checked at dial time", a)
		}
	}
	// A policy allowing loopback: only the link-local address is left.
	r.SetTargetPolicy(&TargetPolicy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if r.Guarded("127.0.0.1:2019") || !r.Guarded("169.254.169.254:80") || !r.Guarded("203.0.113.7:80") {
		t.Error("the guarded set does not follow the policy")
	}
}
