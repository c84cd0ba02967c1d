package discovery

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"
)

// dnsServer is a real DNS server on a loopback UDP socket, answering
// from records the test sets.
type dnsServer struct {
	addr    string
	mu      sync.Mutex
	records map[string][]string // "name TYPE" → RR texts
	rcode   int                 // answered instead when not 0
	queries atomic.Int64
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), records: map[string][]string{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

// set sets the records of name and type (RR texts without the name).
func (s *dnsServer) set(name, qtype string, rrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[dns.Fqdn(name)+" "+qtype] = rrs
}

func (s *dnsServer) fail(rcode int) {
	s.mu.Lock()
	s.rcode = rcode
	s.mu.Unlock()
}

// ServeDNS answers a query.
func (s *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rcode != 0 {
		m.Rcode = s.rcode
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	for _, text := range s.records[q.Name+" "+dns.TypeToString[q.Qtype]] {
		rr, err := dns.NewRR(q.Name + " " + text)
		if err != nil {
			panic(err)
		}
		if srv, ok := rr.(*dns.SRV); ok {
			// The additional section carries the A records of the SRV
			// targets the server knows.
			for _, a := range s.records[srv.Target+" A"] {
				extra, _ := dns.NewRR(srv.Target + " " + a)
				m.Extra = append(m.Extra, extra)
			}
		}
		m.Answer = append(m.Answer, rr)
	}
	_ = w.WriteMsg(m)
}

// TestDNSDiscovery resolves A and AAAA records from a real DNS server:
// the set changes with the records, a SERVFAIL keeps the last good set
// (counted and logged), and the TTL makes the refresh sooner than the
// interval.
func TestDNSDiscovery(t *testing.T) {
	noLeaks(t)
	srv := startDNS(t)
	srv.set("api.test", "A", "30 IN A 127.0.0.2", "30 IN A 127.0.0.3")
	srv.set("api.test", "AAAA", "30 IN AAAA ::1")
	d := &DNS{Hostname: "api.test", Port: 8080, RefreshInterval: caddy.Duration(100 * time.Millisecond), Resolvers: []string{srv.addr}}
	ctx := provision(t, d)
	s := run(t, d)
	s.await(t, "127.0.0.2:8080,127.0.0.3:8080,[::1]:8080")

	srv.set("api.test", "A", "30 IN A 127.0.0.4")
	s.await(t, "127.0.0.4:8080,[::1]:8080")

	// SERVFAIL: the last good set stays, the failures are counted.
	n := s.count()
	srv.fail(dns.RcodeServerFailure)
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultError) >= 2 })
	if s.count() != n || s.last() != "127.0.0.4:8080,[::1]:8080" {
		t.Errorf("a failed lookup published: %q", s.last())
	}
	// No record at all (NXDOMAIN) keeps the set too.
	srv.fail(dns.RcodeNameError)
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultEmpty) >= 1 })
	if s.count() != n {
		t.Error("an empty answer published")
	}
	srv.fail(0)
	srv.set("api.test", "AAAA")
	s.await(t, "127.0.0.4:8080")
	if metric(t, ctx, LastSuccessName, "") == 0 || metric(t, ctx, TargetsName, "") != 1 {
		t.Error("the last-success and targets gauges are not set")
	}
}

// TestDNSTTL: with a refresh interval of an hour, a TTL of 1s makes the
// lookups come every second, and a TTL change is followed.
func TestDNSTTL(t *testing.T) {
	noLeaks(t)
	srv := startDNS(t)
	srv.set("ttl.test", "A", "1 IN A 127.0.0.5")
	d := &DNS{Hostname: "ttl.test", Port: 80, RefreshInterval: caddy.Duration(time.Hour), Resolvers: []string{srv.addr}}
	provision(t, d)
	s := run(t, d)
	s.await(t, "127.0.0.5:80")
	srv.set("ttl.test", "A", "3600 IN A 127.0.0.6")
	s.await(t, "127.0.0.6:80") // seen after the 1s TTL, not after an hour
	q := srv.queries.Load()
	time.Sleep(1500 * time.Millisecond)
	if got := srv.queries.Load(); got != q {
		t.Errorf("%d queries after the TTL became an hour", got-q)
	}
}

// TestDNSSRVDiscovery: SRV records give ports and weights; only the
// lowest priority is used; addresses come from the additional section or
// are looked up; a SERVFAIL keeps the last good set.
func TestDNSSRVDiscovery(t *testing.T) {
	noLeaks(t)
	srv := startDNS(t)
	srv.set("_http._tcp.api.test", "SRV",
		"30 IN SRV 10 5 8081 a.test.", "30 IN SRV 10 1 8082 b.test.", "30 IN SRV 20 1 8083 backup.test.")
	srv.set("a.test", "A", "30 IN A 127.0.0.7")
	srv.set("b.test", "AAAA", "30 IN AAAA ::1") // no A: looked up
	srv.set("backup.test", "A", "30 IN A 127.0.0.9")
	d := &DNSSRV{Service: "_http._tcp.api.test", RefreshInterval: caddy.Duration(100 * time.Millisecond), Resolvers: []string{srv.addr}}
	ctx := provision(t, d)
	s := run(t, d)
	s.await(t, "127.0.0.7:8081/5,[::1]:8082")

	srv.set("_http._tcp.api.test", "SRV", "30 IN SRV 20 1 8083 backup.test.")
	s.await(t, "127.0.0.9:8083")

	srv.fail(dns.RcodeServerFailure)
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultError) >= 2 })
	if s.last() != "127.0.0.9:8083" {
		t.Errorf("a failed lookup changed the set: %q", s.last())
	}
	// A target whose address lookup fails fails the whole lookup.
	srv.fail(0)
	srv.set("_http._tcp.api.test", "SRV", "30 IN SRV 1 1 80 gone.test.")
	before := metric(t, ctx, RefreshName, ResultError)
	waitFor(t, func() bool {
		return metric(t, ctx, RefreshName, ResultError)+metric(t, ctx, RefreshName, ResultEmpty) > before+1
	})
	if s.last() != "127.0.0.9:8083" {
		t.Errorf("an unresolvable target changed the set: %q", s.last())
	}
}

func TestDNSSettings(t *testing.T) {
	for _, tc := range []struct {
		m    caddy.Provisioner
		want string
	}{
		{&DNS{Port: 80}, "hostname is required"},
		{&DNS{Hostname: "x", Port: 0}, "port 0"},
		{&DNSSRV{}, "service is required"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		err := tc.m.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T: %v, want %q", tc.m, err, tc.want)
		}
	}
	// Resolvers without a port get 53; the system's are read otherwise.
	r, err := newResolver([]string{"127.0.0.1", "[::1]:5353"}, 0)
	if err != nil || strings.Join(r.servers, ",") != "127.0.0.1:53,[::1]:5353" {
		t.Errorf("resolvers %v (%v)", r, err)
	}
	if _, err := newResolver(nil, 0); err != nil {
		t.Logf("no system resolvers: %v", err)
	}
}

// waitFor waits until ok.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
