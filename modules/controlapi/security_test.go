package controlapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestTargetsPointingInward is issue 12.3: an admin token could make
// Caddy's admin endpoint, the API itself or a metadata service a target,
// and then reach it through the public listener.
func TestTargetsPointingInward(t *testing.T) {
	own := func(_ *Config, h *Hooks) {
		h.OwnAddresses = func() []string { return []string{":8080", "10.0.0.50:8443", "localhost:2019"} }
	}
	refused := []string{
		"localhost:2019", "127.0.0.1:9901", "127.0.0.2:80", "[::1]:80",
		"169.254.169.254:80", "[fe80::1%eth0]:80", "[fe80::1]:80",
		"[::ffff:127.0.0.1]:80", "10.0.0.50:8443", "inward.example:80", "metadata.example:80",
		"224.0.0.1:80",
	}
	for _, addr := range refused {
		for _, call := range []req{
			{method: "POST", path: "/api/v1/upstreams/backend/targets", body: fmt.Sprintf(`{"address":%q}`, addr)},
			{method: "PUT", path: "/api/v1/upstreams/backend/targets", body: fmt.Sprintf(`{"targets":[{"address":"10.0.0.1:8080"},{"address":%q}]}`, addr)},
			{method: "POST", path: "/api/v1/upstreams", body: fmt.Sprintf(`{"id":"evil","targets":[{"address":%q}]}`, addr)},
		} {
			e := newEnv(t, own)
			call.token = adminToken
			w := e.do(call)
			if w.Code != http.StatusForbidden && w.Code != http.StatusBadRequest {
				t.Errorf("%s %s %s: %d %s", call.method, call.path, addr, w.Code, w.Body)
				continue
			}
			if w.Code == http.StatusForbidden && !strings.Contains(w.Body.String(), "may not point at the proxy") {
				t.Errorf("%s: %s", addr, w.Body)
			}
			if u, _ := e.reg.Get("backend"); len(u.Targets) != 2 {
				t.Errorf("%s: targets changed: %v", addr, u.Targets)
			}
			if _, ok := e.reg.Get("evil"); ok {
				t.Errorf("%s: upstream created", addr)
			}
			if n := len(e.logs.All()); n != 1 {
				t.Errorf("%s: %d audit entries", addr, n)
			}
		}
	}
	// A name that does not resolve cannot be checked.
	e := newEnv(t, own)
	w := e.do(req{method: "POST", path: "/api/v1/upstreams/backend/targets", token: adminToken, body: `{"address":"nowhere.example:80"}`})
	checkError(t, w, http.StatusUnprocessableEntity, "does not resolve", "address")
	// Private and public addresses and names are fine by default.
	for _, addr := range []string{"10.0.0.9:8080", "192.168.1.1:80", "203.0.113.7:443", "svc.internal:443", "[2001:db8::1]:80", "10.0.0.50:8080"} {
		w := e.do(req{method: "POST", path: "/api/v1/upstreams/backend/targets", token: adminToken, body: fmt.Sprintf(`{"address":%q}`, addr)})
		if w.Code != http.StatusCreated {
			t.Errorf("%s: %d %s", addr, w.Code, w.Body)
		}
	}
	// Targets the upstream already has (from the config) may stay in a PUT.
	e = newEnv(t, own)
	e.reg.Reconcile([]registry.UpstreamSpec{{ID: "local", Targets: []registry.TargetSpec{{Address: "127.0.0.1:3000"}}}}, nil)
	w = e.do(req{method: "PUT", path: "/api/v1/upstreams/local/targets", token: adminToken, body: `{"targets":[{"address":"127.0.0.1:3000","weight":4}]}`})
	if w.Code != http.StatusOK {
		t.Errorf("config target kept in PUT: %d %s", w.Code, w.Body)
	}
}

// TestAllowedTargetNetworks: the allow-list restricts API targets to its
// networks, which may include loopback; the proxy's own addresses stay
// refused.
func TestAllowedTargetNetworks(t *testing.T) {
	e := newEnv(t, func(c *Config, h *Hooks) {
		c.AllowedTargetNetworks = []string{"127.0.0.0/8", "10.1.0.0/16", "::1"}
		h.OwnAddresses = func() []string { return []string{"127.0.0.1:8080"} }
	})
	for addr, want := range map[string]int{
		"127.0.0.1:3000":  http.StatusCreated,
		"[::1]:3000":      http.StatusCreated,
		"10.1.2.3:80":     http.StatusCreated,
		"svc.internal:80": http.StatusCreated, // 10.1.2.3
		"10.2.0.1:80":     http.StatusForbidden,
		"127.0.0.1:8080":  http.StatusForbidden, // the proxy's listener
		"127.0.0.1:9901":  http.StatusForbidden, // the API itself
	} {
		w := e.do(req{method: "POST", path: "/api/v1/upstreams/solo/targets", token: adminToken, body: fmt.Sprintf(`{"address":%q}`, addr)})
		if w.Code != want {
			t.Errorf("%s: %d, want %d: %s", addr, w.Code, want, w.Body)
		}
	}
	if _, err := New(Config{Tokens: []Token{{Token: "x"}}, AllowedTargetNetworks: []string{"10.0.0.0/33", "nope"}}, registry.New(), nil, Hooks{}); err == nil ||
		!strings.Contains(err.Error(), `allowed_target_networks[0] "10.0.0.0/33"`) || !strings.Contains(err.Error(), "allowed_target_networks[1]") {
		t.Errorf("bad networks: %v", err)
	}
}

// TestTimedDrainNeedsAdmin is issue 12.5: a drain with a timeout removes
// the targets when it expires, which is admin's.
func TestTimedDrainNeedsAdmin(t *testing.T) {
	for _, path := range []string{"/api/v1/upstreams/backend/drain", "/api/v1/upstreams/backend/targets/10.0.0.1:8080/drain"} {
		e := newEnv(t)
		w := e.do(req{method: "POST", path: path, token: operateToken, body: `{"timeout_secs":1}`})
		checkError(t, w, http.StatusForbidden, "needs the admin scope", "timeout_secs")
		if u, _ := e.reg.Get("backend"); u.Targets[0].State != registry.StateActive {
			t.Error("refused drain applied")
		}
		if m := e.logs.All()[0].ContextMap(); m["status"] != int64(403) || m["upstream"] != "backend" {
			t.Errorf("audit %v", m)
		}
		w = e.do(req{method: "POST", path: path, token: operateToken})
		if w.Code != http.StatusOK {
			t.Errorf("untimed drain by operate: %d %s", w.Code, w.Body)
		}
		w = e.do(req{method: "POST", path: path, token: adminToken, body: `{"timeout_secs":1}`})
		if w.Code != http.StatusOK {
			t.Errorf("timed drain by admin: %d %s", w.Code, w.Body)
		}
	}
}

// TestRefusedReadsAreAudited is issue 12.9, with the bound that keeps a
// flood of refusals from filling a disk.
func TestRefusedReadsAreAudited(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "GET", path: "/api/v1/upstreams"})
	if w.Code != 401 {
		t.Fatal(w.Code)
	}
	e.do(req{method: "GET", path: "/api/v1/config/validate", token: readToken})
	e.do(req{method: "GET", path: "/api/v1/upstreams", token: readToken}) // allowed: not audited
	entries := e.logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	if m := entries[0].ContextMap(); m["status"] != int64(401) || m["auth"] != "none" || m["path"] != "/api/v1/upstreams" {
		t.Errorf("%v", m)
	}
	if m := entries[1].ContextMap(); m["status"] != int64(403) || m["who"] != "viewer" {
		t.Errorf("%v", m)
	}
	// A flood: at most the burst is written; the rest is counted.
	for i := 0; i < 5*refusalBurst; i++ {
		e.do(req{method: "GET", path: "/api/v1/routes", token: "wrong"})
	}
	n := len(e.logs.All()) - 2
	if n < refusalBurst-5 || n > refusalBurst+refusalRate*5 {
		t.Errorf("%d entries for %d refusals", n, 5*refusalBurst)
	}
	time.Sleep(100 * time.Millisecond) // refill at least one token
	e.do(req{method: "GET", path: "/api/v1/routes", token: "wrong"})
	last := e.logs.All()[len(e.logs.All())-1].ContextMap()
	if c, _ := last["refused_reads_not_audited"].(int64); c < 1 {
		t.Errorf("suppressed count missing: %v", last)
	}
	// Mutations are always audited.
	before := len(e.logs.All())
	for i := 0; i < 10; i++ {
		e.do(req{method: "DELETE", path: "/api/v1/upstreams/extra", token: "wrong"})
	}
	if got := len(e.logs.All()) - before; got != 10 {
		t.Errorf("%d of 10 refused mutations audited", got)
	}
}

// failingStore fails every save.
type failingStore struct{}

func (failingStore) Load() ([]byte, error) { return nil, nil }
func (failingStore) Save([]byte) error {
	return errors.New("write /state/state.json: no space left on device")
}
func (failingStore) String() string { return "file /state/state.json" }

// TestUnsavedChangesFail is issue 12.7: a change that cannot be saved is
// answered 503, is not applied, and the cause is in the audit log (not
// in the answer).
func TestUnsavedChangesFail(t *testing.T) {
	e := newEnv(t)
	if err := e.reg.UseStore(failingStore{}); err != nil {
		t.Fatal(err)
	}
	w := e.do(req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.1:8080", token: operateToken, body: `{"weight":9}`})
	checkError(t, w, http.StatusServiceUnavailable, "not applied", "")
	if strings.Contains(w.Body.String(), "/state") {
		t.Errorf("store details in the answer: %s", w.Body)
	}
	if u, _ := e.reg.Get("backend"); u.Targets[0].Weight != 2 {
		t.Error("applied")
	}
	m := e.logs.All()[0].ContextMap()
	if cause, _ := m["cause"].(string); !strings.Contains(cause, "no space left") {
		t.Errorf("audit %v", m)
	}
	w = e.do(req{method: "GET", path: "/api/v1/state", token: readToken})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"save_error":"write /state/state.json: no space left on device"`) || !strings.Contains(w.Body.String(), `"store":"file /state/state.json"`) {
		t.Errorf("state: %d %s", w.Code, w.Body)
	}
}

func TestTokenSHA256(t *testing.T) {
	const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" // "password"
	reg := registry.New()
	s, err := New(Config{Tokens: []Token{{Name: "h", TokenSHA256: hash, Scopes: []string{ScopeRead}}}}, reg, nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, reg: reg, srv: s}
	if w := e.do(req{method: "GET", path: "/api/v1/routes", token: "password"}); w.Code != 200 {
		t.Errorf("hashed token: %d", w.Code)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/routes", token: hash}); w.Code != 401 {
		t.Errorf("the hash itself authenticates: %d", w.Code)
	}
	for _, bad := range []Token{{TokenSHA256: "XYZ"}, {TokenSHA256: strings.ToUpper(hash)}, {Token: "password", TokenSHA256: hash}} {
		if _, err := New(Config{Tokens: []Token{bad}}, reg, nil, Hooks{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := New(Config{Tokens: []Token{{Token: "password"}, {TokenSHA256: hash}}}, reg, nil, Hooks{}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("same token twice: %v", err)
	}
}
