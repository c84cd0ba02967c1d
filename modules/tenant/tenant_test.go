package tenant

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
)

func provisioned(t *testing.T, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return h
}

// serve runs a request through h and returns the status, body and the
// namespace the next handler saw.
func serve(t *testing.T, h *Handler, r *http.Request) (int, string, string) {
	t.Helper()
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	seen := "-"
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = Namespace(r.Context())
		if !(MatchNamespace("a")).Match(r) && seen == "a" {
			t.Error("matcher disagrees")
		}
		w.WriteHeader(200)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return w.Code, w.Body.String(), seen
}

func TestIdentifyByHostSubdomainHeader(t *testing.T) {
	h := provisioned(t, &Handler{
		Namespaces:  []string{"a", "b"},
		Hosts:       map[string]string{"Shop.Example": "a"},
		SubdomainOf: []string{"T.example"},
		Header:      "x-tenant",
		Unidentified: &Answer{
			Status: 404, Message: "who are you",
		},
	})
	for _, tc := range []struct {
		host, header string
		status       int
		ns           string
	}{
		{"shop.example:443", "", 200, "a"},
		{"b.t.example", "", 200, "b"},
		{"other", "b", 200, "b"},
		{"shop.example", "a", 200, "a"},
		{"shop.example", "b", 404, "-"},
		{"c.t.example", "", 404, "-"},
		{"x.b.t.example", "", 404, "-"},
		{"other", "", 404, "-"},
	} {
		r := httptest.NewRequest("GET", "http://"+tc.host+"/", nil)
		if tc.header != "" {
			r.Header.Set("X-Tenant", tc.header)
		}
		status, body, ns := serve(t, h, r)
		if status != tc.status || ns != tc.ns {
			t.Errorf("%s/%s: %d %q ns %q, want %d %q", tc.host, tc.header, status, body, ns, tc.status, tc.ns)
		}
		if status == 404 && !strings.Contains(body, "who are you") {
			t.Errorf("answer body %q", body)
		}
	}
	r := httptest.NewRequest("GET", "http://other/", nil)
	r.Header.Add("X-Tenant", "a")
	r.Header.Add("X-Tenant", "b")
	if status, body, _ := serve(t, h, r); status != 404 || !strings.Contains(body, "more than one") {
		t.Errorf("two headers: %d %q", status, body)
	}
}

func TestUnidentifiedDefaultAndGlobal(t *testing.T) {
	h := provisioned(t, &Handler{Namespaces: []string{"a"}, Header: "X-T"})
	status, body, _ := serve(t, h, httptest.NewRequest("GET", "/", nil))
	if status != DefaultUnidentifiedStatus || !strings.Contains(body, "no tenant identified") {
		t.Errorf("default answer: %d %q", status, body)
	}
	g := provisioned(t, &Handler{Namespaces: []string{"a"}, Header: "X-T", Unidentified: &Answer{Global: true}})
	if status, _, ns := serve(t, g, httptest.NewRequest("GET", "/", nil)); status != 200 || ns != "" {
		t.Errorf("global: %d %q", status, ns)
	}
	if MatchNamespace("").Match(httptest.NewRequest("GET", "/", nil)) {
		t.Error("the empty matcher matched")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{}, "at least one"},
		{Handler{Namespaces: []string{"a:b"}, Header: "X"}, "not a namespace name"},
		{Handler{Namespaces: []string{"a"}}, "no source"},
		{Handler{Namespaces: []string{"a"}, Hosts: map[string]string{"h": "z"}}, "not in namespaces"},
		{Handler{Namespaces: []string{"a"}, Header: "X", Unidentified: &Answer{Status: 302}}, "not an error status"},
		{Handler{Namespaces: []string{"a"}, JWT: &JWT{Audience: []string{"x"}}}, "exactly one of"},
		{Handler{Namespaces: []string{"a"}, JWT: &JWT{JWKSFile: "f"}}, "audience is required"},
		{Handler{Namespaces: []string{"a"}, JWT: &JWT{JWKSURL: "file:///x", Audience: []string{"x"}}}, "http(s) URL"},
	} {
		if err := tc.h.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.h, err, tc.want)
		}
	}
}

// keys makes an RSA, an EC and an Ed25519 key with their JWKS.
type keys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
	set []byte
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.rsa.PublicKey, KeyID: "rsa", Algorithm: "RS256"},
		{Key: &k.ec.PublicKey, KeyID: "ec"},
		{Key: k.ed.Public(), KeyID: "ed", Algorithm: "EdDSA"},
	}}
	if k.set, err = json.Marshal(set); err != nil {
		t.Fatal(err)
	}
	return k
}

func token(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c jwt.Claims, extra map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(c).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTAlgorithmsAndClaims(t *testing.T) {
	k := newKeys(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, k.set, 0o600); err != nil {
		t.Fatal(err)
	}
	h := provisioned(t, &Handler{Namespaces: []string{"a", "b"}, JWT: &JWT{JWKSFile: file, Audience: []string{"s"}, Issuer: "idp"}})
	good := jwt.Claims{Audience: jwt.Audience{"s"}, Issuer: "idp", Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	for _, tc := range []struct {
		name   string
		tok    string
		status int
		ns     string
	}{
		{"RS256", token(t, jose.RS256, k.rsa, "rsa", good, map[string]any{"tenant": "a"}), 200, "a"},
		{"ES384", token(t, jose.ES384, k.ec, "ec", good, map[string]any{"tenant": "b"}), 200, "b"},
		{"EdDSA", token(t, jose.EdDSA, k.ed, "ed", good, map[string]any{"tenant": "a"}), 200, "a"},
		{"no kid", token(t, jose.EdDSA, k.ed, "", good, map[string]any{"tenant": "a"}), 200, "a"},
		{"PS256 with an RS256 key", token(t, jose.PS256, k.rsa, "rsa", good, map[string]any{"tenant": "a"}), 421, "-"},
		{"wrong issuer", token(t, jose.EdDSA, k.ed, "ed", jwt.Claims{Audience: jwt.Audience{"s"}, Issuer: "evil", Expiry: good.Expiry}, map[string]any{"tenant": "a"}), 421, "-"},
		{"not yet valid", token(t, jose.EdDSA, k.ed, "ed", jwt.Claims{Audience: jwt.Audience{"s"}, Issuer: "idp", Expiry: good.Expiry, NotBefore: jwt.NewNumericDate(time.Now().Add(time.Hour))}, map[string]any{"tenant": "a"}), 421, "-"},
		{"no tenant claim", token(t, jose.EdDSA, k.ed, "ed", good, nil), 421, "-"},
		{"unknown tenant", token(t, jose.EdDSA, k.ed, "ed", good, map[string]any{"tenant": "c"}), 421, "-"},
		{"HS256", token(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "rsa", good, map[string]any{"tenant": "a"}), 421, "-"},
		{"garbage", "a.b.c", 421, "-"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tc.tok)
		if status, body, ns := serve(t, h, r); status != tc.status || ns != tc.ns {
			t.Errorf("%s: %d %q %q, want %d %q", tc.name, status, body, ns, tc.status, tc.ns)
		}
	}
	// Not a bearer token: no identity from it.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Basic eDp5")
	if status, body, _ := serve(t, h, r); status != 421 || !strings.Contains(body, "no host") {
		t.Errorf("basic auth: %d %q", status, body)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+strings.Repeat("x", maxTokenHeaderLen+1))
	if status, body, _ := serve(t, h, r); status != 421 || !strings.Contains(body, "too large") {
		t.Errorf("huge token: %d %q", status, body)
	}
}

func TestJWKSURLCachingAndRefresh(t *testing.T) {
	first, second := newKeys(t), newKeys(t)
	var fetches atomic.Int32
	var current atomic.Pointer[[]byte]
	current.Store(&first.set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(*current.Load())
	}))
	defer srv.Close()
	h := provisioned(t, &Handler{Namespaces: []string{"a"}, JWT: &JWT{JWKSURL: srv.URL, Audience: []string{"s"}}})
	good := jwt.Claims{Audience: jwt.Audience{"s"}, Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	call := func(key any, kid string) int {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token(t, jose.EdDSA, key, kid, good, map[string]any{"tenant": "a"}))
		status, _, _ := serve(t, h, r)
		return status
	}
	for range 3 {
		if s := call(first.ed, "ed"); s != 200 {
			t.Fatalf("cached key: %d", s)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 3 tokens of a known key", n)
	}
	// Keys rotate: a token with an unknown kid refetches, once per
	// MinRefresh.
	current.Store(&second.set)
	if s := call(second.ed, "ed2"); s != 421 {
		t.Fatalf("unknown kid: %d", s)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("fetches after an unknown kid: %d", n)
	}
	h.JWT.keys.mu.Lock()
	h.JWT.keys.tried = time.Now().Add(-2 * MinRefresh)
	h.JWT.keys.mu.Unlock()
	if s := call(second.ed, "ed"); s != 200 {
		t.Fatalf("rotated key after refetch: %d", s)
	}
	// A failing key-set URL keeps the cached set.
	bad := []byte("not json")
	current.Store(&bad)
	h.JWT.keys.mu.Lock()
	h.JWT.keys.tried, h.JWT.keys.fetched = time.Time{}, time.Time{}
	h.JWT.keys.mu.Unlock()
	if s := call(second.ed, "ed"); s != 200 {
		t.Fatalf("after a failed refresh: %d", s)
	}
}

func TestJWKSLoadErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	dir := t.TempDir()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	private, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv, KeyID: "p"}}})
	os.WriteFile(filepath.Join(dir, "private.json"), private, 0o600)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }))
	defer srv.Close()
	for _, tc := range []struct {
		j    JWT
		want string
	}{
		{JWT{JWKSFile: filepath.Join(dir, "missing.json"), Audience: []string{"s"}}, "jwks_file"},
		{JWT{JWKSFile: filepath.Join(dir, "bad.json"), Audience: []string{"s"}}, "not a JWKS"},
		{JWT{JWKSFile: filepath.Join(dir, "private.json"), Audience: []string{"s"}}, "not a public key"},
		{JWT{JWKSURL: srv.URL, Audience: []string{"s"}}, "status 500"},
		{JWT{JWKSURL: "http://127.0.0.1:1/", Audience: []string{"s"}}, "jwks_url"},
	} {
		h := &Handler{Namespaces: []string{"a"}, JWT: &tc.j}
		if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.j, err, tc.want)
		}
	}
}

func TestMetricsView(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"route", "namespace"})
	reg.MustRegister(c, prometheus.NewGoCollector())
	c.WithLabelValues("a:web", "stale").Inc()
	c.WithLabelValues("b:web", "").Inc()
	c.WithLabelValues("web", "").Inc()
	m := &Metrics{Namespace: "a", gatherer: reg}
	w := httptest.NewRecorder()
	if err := m.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), nil); err != nil {
		t.Fatal(err)
	}
	body := w.Body.String()
	if !strings.Contains(body, `x_total{route="a:web",namespace="a"} 1`) || strings.Contains(body, "b:web") || strings.Contains(body, `"web"`) || strings.Contains(body, "go_goroutines") || strings.Contains(body, "stale") {
		t.Errorf("view:\n%s", body)
	}
	if err := (&Metrics{Namespace: "a:b"}).Validate(); err == nil {
		t.Error("a:b accepted")
	}
	empty := &Metrics{Namespace: "a"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := empty.Provision(ctx); err != nil || empty.Validate() != nil {
		t.Fatal(err)
	}
}

func TestIdentifyBySNI(t *testing.T) {
	h := provisioned(t, &Handler{
		Namespaces:  []string{"a", "b"},
		Hosts:       map[string]string{"shop.example": "a"},
		SubdomainOf: []string{"t.example"},
		SNI:         true,
	})
	for _, tc := range []struct {
		sni, host string
		status    int
		ns        string
		reason    string
	}{
		{"a.t.example", "a.t.example", 200, "a", ""},
		{"A.T.Example.", "a.t.example:443", 200, "a", ""},
		{"shop.example", "shop.example", 200, "a", ""},
		// The Host names the same tenant by another name.
		{"shop.example", "a.t.example", 200, "a", ""},
		// Domain fronting: a connection for a, a request for b.
		{"a.t.example", "b.t.example", 421, "-", "TLS server name and the Host"},
		{"a.t.example", "elsewhere.example", 421, "-", "TLS server name and the Host"},
		// A server name naming no tenant leaves the Host to decide.
		{"other.example", "b.t.example", 200, "b", ""},
		{"", "b.t.example", 200, "b", ""},
	} {
		r := httptest.NewRequest("GET", "https://x/", nil)
		r.Host = tc.host
		r.TLS = &tls.ConnectionState{ServerName: tc.sni}
		status, body, ns := serve(t, h, r)
		if status != tc.status || ns != tc.ns || !strings.Contains(body, tc.reason) {
			t.Errorf("sni %q host %q: %d %q %s, want %d %q %q", tc.sni, tc.host, status, ns, body, tc.status, tc.ns, tc.reason)
		}
	}
	// Without TLS the Host decides.
	r := httptest.NewRequest("GET", "http://b.t.example/", nil)
	if status, _, ns := serve(t, h, r); status != 200 || ns != "b" {
		t.Errorf("plain: %d %q", status, ns)
	}
	// Off, the server name is not read.
	off := provisioned(t, &Handler{Namespaces: []string{"a", "b"}, SubdomainOf: []string{"t.example"}})
	r = httptest.NewRequest("GET", "https://x/", nil)
	r.Host, r.TLS = "b.t.example", &tls.ConnectionState{ServerName: "a.t.example"}
	if status, _, ns := serve(t, off, r); status != 200 || ns != "b" {
		t.Errorf("sni off: %d %q", status, ns)
	}
	bad := &Handler{Namespaces: []string{"a"}, Header: "X-Tenant", SNI: true}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "sni") {
		t.Errorf("sni without hosts: %v", err)
	}
}

// TestJWKSRefreshOutlivesTheClient: a key-set refresh triggered by a
// token with an unknown kid ran with the request's context: a client
// that went away aborted it, and the next refresh waits MinRefresh, so
// a client cancelling such requests every 30 s kept rotated keys out
// (every token of the new key answered 421). The refresh completes now.
func TestJWKSRefreshOutlivesTheClient(t *testing.T) {
	first, second := newKeys(t), newKeys(t)
	rotated, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: second.ed.Public(), KeyID: "ed2", Algorithm: "EdDSA"}}})
	if err != nil {
		t.Fatal(err)
	}
	var rotate atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rotate.Load() {
			_, _ = w.Write(first.set)
			return
		}
		time.Sleep(300 * time.Millisecond) // a slow identity provider
		_, _ = w.Write(rotated)
	}))
	defer srv.Close()
	h := provisioned(t, &Handler{Namespaces: []string{"a"}, JWT: &JWT{JWKSURL: srv.URL, Audience: []string{"s"}}})
	good := jwt.Claims{Audience: jwt.Audience{"s"}, Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	tok := token(t, jose.EdDSA, second.ed, "ed2", good, map[string]any{"tenant": "a"})
	rotate.Store(true)

	// The attacker's request: the new kid, then gone after 50 ms.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	r.Header.Set("Authorization", "Bearer "+tok)
	serve(t, h, r)
	time.Sleep(500 * time.Millisecond)

	// A client of the new key, within MinRefresh.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if status, body, ns := serve(t, h, r); status != 200 || ns != "a" {
		t.Errorf("a token of the rotated key after a cancelled refresh: %d %q", status, body)
	}
}
