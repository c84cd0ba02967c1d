package discovery

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// consulService is an instance in the fake catalog.
type consulService struct {
	node, addr string
	port       int
	weight     int
	tags       []string
	dc         string
	status     string // passing, warning, critical
}

// consulServer implements Consul's documented
// GET /v1/health/service/<service> on a real HTTP server: the dc, tag
// (repeatable) and passing filters, the X-Consul-Token ACL check and
// blocking queries (index and wait, X-Consul-Index).
type consulServer struct {
	*httptest.Server
	token string
	mu    sync.Mutex
	index uint64
	svcs  map[string][]consulService
	fail  int // status answered instead when not 0
	wake  chan struct{}
	// blocked counts the queries that blocked (had an index).
	blocked int
}

func startConsul(t *testing.T, token string) *consulServer {
	c := &consulServer{token: token, index: 1, svcs: map[string][]consulService{}, wake: make(chan struct{})}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(func() {
		c.CloseClientConnections()
		c.Close()
	})
	return c
}

// set changes a service's instances (a new index, blocked queries wake).
func (c *consulServer) set(name string, svcs ...consulService) {
	c.mu.Lock()
	c.svcs[name] = svcs
	c.index++
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

func (c *consulServer) setFail(status int) {
	c.mu.Lock()
	c.fail = status
	c.mu.Unlock()
}

func (c *consulServer) serve(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/health/service/")
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("X-Consul-Token") != c.token {
		http.Error(w, "ACL not found", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	c.mu.Lock()
	if c.fail != 0 {
		c.mu.Unlock()
		http.Error(w, "rpc error: No cluster leader", c.fail)
		return
	}
	if idx, _ := strconv.ParseUint(q.Get("index"), 10, 64); idx > 0 && idx >= c.index {
		c.blocked++
		wait, err := time.ParseDuration(q.Get("wait"))
		if err != nil {
			wait = 5 * time.Minute
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		c.mu.Lock()
	}
	dc := q.Get("dc")
	if dc == "" {
		dc = "dc1"
	}
	type entry struct {
		Node struct {
			Node, Address, Datacenter string
		}
		Service struct {
			ID, Service, Address string
			Port                 int
			Tags                 []string
			Weights              struct{ Passing, Warning int }
		}
		Checks []struct{ Status string }
	}
	out := []entry{}
	for _, s := range c.svcs[name] {
		if s.dc != "" && s.dc != dc || s.dc == "" && dc != "dc1" {
			continue
		}
		if q.Get("passing") != "" && s.status != "passing" {
			continue
		}
		if !allIn(q["tag"], s.tags) {
			continue
		}
		var e entry
		e.Node.Node, e.Node.Address, e.Node.Datacenter = s.node, "127.0.0.1", dc
		e.Service.ID, e.Service.Service, e.Service.Address, e.Service.Port = s.node+"-"+name, name, s.addr, s.port
		e.Service.Tags, e.Service.Weights.Passing, e.Service.Weights.Warning = s.tags, s.weight, 1
		e.Checks = append(e.Checks, struct{ Status string }{s.status})
		out = append(out, e)
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(c.index, 10))
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func allIn(want, have []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// TestConsulDiscovery follows a service through blocking queries: only
// passing instances with every tag, of the datacenter asked; a change is
// seen at once (the refresh interval is an hour); an outage keeps the
// last good set; the token, read from {env.*}, is sent and never echoed.
func TestConsulDiscovery(t *testing.T) {
	noLeaks(t)
	const token = "s3cr3t-consul-token"
	t.Setenv("SENTINEL_TEST_CONSUL_TOKEN", token)
	srv := startConsul(t, token)
	srv.set("api",
		consulService{node: "n1", addr: "127.0.0.2", port: 8080, tags: []string{"v2", "prod"}, status: "passing"},
		consulService{node: "n2", port: 8081, weight: 4, tags: []string{"prod", "v2"}, status: "passing"},
		consulService{node: "n3", addr: "127.0.0.4", port: 8080, tags: []string{"prod"}, status: "passing"},
		consulService{node: "n4", addr: "127.0.0.5", port: 8080, tags: []string{"prod", "v2"}, status: "critical"},
		consulService{node: "n5", addr: "127.0.0.6", port: 8080, tags: []string{"prod", "v2"}, status: "passing", dc: "dc2"},
	)
	c := &Consul{Address: srv.URL, Service: "api", Tags: []string{"prod", "v2"}, Token: "{env.SENTINEL_TEST_CONSUL_TOKEN}",
		RefreshInterval: caddy.Duration(time.Hour)}
	ctx := provision(t, c)
	s := run(t, c)
	s.await(t, "127.0.0.1:8081/4,127.0.0.2:8080")

	waitFor(t, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return srv.blocked > 0 })
	start := time.Now()
	srv.set("api", consulService{node: "n1", addr: "127.0.0.2", port: 8080, tags: []string{"v2", "prod"}, status: "passing"})
	s.await(t, "127.0.0.2:8080")
	if time.Since(start) > 5*time.Second {
		t.Error("the change was not seen through the blocking query")
	}

	// An outage and an instance list that becomes empty keep the set.
	n := s.count()
	srv.setFail(http.StatusInternalServerError)
	srv.set("api") // wake the blocked query
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultError) >= 1 })
	srv.setFail(0)
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultEmpty) >= 1 })
	if s.count() != n || s.last() != "127.0.0.2:8080" {
		t.Errorf("a failed or empty lookup published %q", s.last())
	}
	srv.set("api", consulService{node: "n9", addr: "127.0.0.9", port: 9000, tags: []string{"v2", "prod"}, status: "passing"})
	s.await(t, "127.0.0.9:9000")
}

// TestConsulOptions: only-passing off, another datacenter, and errors
// that never hold the token.
func TestConsulOptions(t *testing.T) {
	noLeaks(t)
	srv := startConsul(t, "tok")
	srv.set("web",
		consulService{node: "n1", addr: "127.0.0.2", port: 80, status: "warning", dc: "dc2"},
		consulService{node: "n2", addr: "127.0.0.3", port: 80, status: "passing", dc: "dc2"},
		consulService{node: "n3", addr: "127.0.0.4", port: 80, status: "passing"},
	)
	off := false
	c := &Consul{Address: srv.URL + "/", Service: "web", Datacenter: "dc2", OnlyPassing: &off, Token: "tok",
		RefreshInterval: caddy.Duration(time.Second)}
	provision(t, c)
	ts, err := c.lookup(t.Context(), time.Second)
	if err != nil || show(ts) != "127.0.0.2:80,127.0.0.3:80" {
		t.Errorf("%s (%v)", show(ts), err)
	}
	c.Cleanup()

	// A wrong token: the error says 403, never the token.
	bad := &Consul{Address: srv.URL, Service: "web", Token: "wrong-token-xyz"}
	provision(t, bad)
	_, err = bad.lookup(t.Context(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "wrong-token-xyz") {
		t.Errorf("wrong token: %v", err)
	}
	bad.Cleanup()
	// An echoed token is redacted.
	if err := bad.redact(errStr("x wrong-token-xyz y")); strings.Contains(err.Error(), "wrong-token-xyz") {
		t.Errorf("not redacted: %v", err)
	}
	// Not a Consul answer.
	nc := &Consul{Address: srv.URL, Service: "web", Token: "tok"}
	provision(t, nc)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{}")) })
	if _, err := nc.lookup(t.Context(), time.Second); err == nil || !strings.Contains(err.Error(), "not a list") {
		t.Errorf("bad answer: %v", err)
	}
	nc.Cleanup()

	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	for _, m := range []*Consul{{}, {Service: "x", Address: "ftp://h"}, {Service: "x", Address: "http://user:pw@h"}} {
		if err := m.Provision(ctx); err == nil || strings.Contains(err.Error(), "pw") {
			t.Errorf("%+v: %v", m, err)
		}
	}
}

type errStr string

func (e errStr) Error() string { return string(e) }
