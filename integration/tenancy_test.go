package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// tenancyConfig is two tenants behind one shared listener (identified by
// host, subdomain, header and a verified JWT), one listener bound to
// team-a, a shared route rate limited per tenant, and API tokens scoped
// to each namespace.
const tenancyConfig = `
listeners {
    listener "shared" {
        address "%[1]s"
        tenants {
            host "a.example.test" namespace="team-a"
            subdomain-of "tenants.test"
            header "X-Tenant"
            jwt {
                jwks-file "%[2]s"
                audience "sentinel"
            }
        }
    }
}
upstreams { upstream "common" { target "%[3]s"; }; }
filters {
    filter "per-tenant" { type "rate-limit"; max-rps 0.001; burst 3; key "tenant"; }
}
routes {
    route "health" { priority "critical"; matches { path "/health"; }; builtin-handler "health"; }
    route "shared" { priority "high"; matches { path-prefix "/shared"; }; upstream "common"; filters "per-tenant"; }
}
namespace "team-a" {
    listeners { listener "a-only" { address "%[4]s"; }; }
    upstreams { upstream "api" { target "%[5]s"; }; }
    routes {
        route "secret" { priority "high"; matches { path-prefix "/a-secret"; }; upstream "api"; }
        route "metrics" { priority "critical"; matches { path "/a-metrics"; }; builtin-handler "metrics"; }
        route "web" { matches { path-prefix "/"; }; upstream "api"; }
    }
}
namespace "team-b" {
    upstreams { upstream "api" { target "%[6]s"; }; }
    routes {
        route "web" { matches { path-prefix "/"; }; upstream "api"; }
    }
}
observability { logging { access-log { enabled #true; file "%[8]s"; }; }; }
admin-api {
    address "%[7]s"
    allowed-target-networks "127.0.0.0/8"
    auth {
        token "root-token"
        token "a-token" scope="operate" namespace="team-a" name="team-a-ops"
        token "b-token" scope="admin" namespace="team-b" name="team-b-admin"
    }
}
`

// jwtKit signs tokens with the key of a JWKS file, and with others.
type jwtKit struct {
	key, other *ecdsa.PrivateKey
	file       string
}

func newJWTKit(t *testing.T) *jwtKit {
	t.Helper()
	k := &jwtKit{}
	var err error
	if k.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.other, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	k.file = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(k.file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// sign makes a token signed by key with kid k1.
func (k *jwtKit) sign(t *testing.T, key crypto.Signer, claims jwt.Claims, tenant string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(claims).Claims(map[string]any{"tenant": tenant}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned makes an `alg: none` token.
func unsigned(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": "k1"})
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "."
}

// hmacWithPublicKey makes an HS256 token whose secret is the public key
// (the algorithm-confusion attack).
func (k *jwtKit) hmacWithPublicKey(t *testing.T, claims jwt.Claims, tenant string) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(claims).Claims(map[string]any{"tenant": tenant}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTenancyIsolation runs two tenants through the real proxy and the
// real control API and checks what one tenant must not be able to do:
// reach the other's routes by Host, header, path or forged-token tricks,
// read or change the other's upstreams or routes with its API token, or
// exhaust the other's rate limit.
func TestTenancyIsolation(t *testing.T) {
	a, b, common := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "common")
	shared, aOnly, api := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	kit := newJWTKit(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	loadKDL(t, fmt.Sprintf(tenancyConfig, shared, kit.file, common.addr, aOnly, a.addr, b.addr, api, accessLog))
	c := client()
	base := "http://" + shared

	now := time.Now()
	good := jwt.Claims{Audience: jwt.Audience{"sentinel"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}
	expired := jwt.Claims{Audience: jwt.Audience{"sentinel"}, Expiry: jwt.NewNumericDate(now.Add(-time.Hour))}
	otherAud := jwt.Claims{Audience: jwt.Audience{"billing"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
	noExp := jwt.Claims{Audience: jwt.Audience{"sentinel"}}
	bearer := func(tok string) string { return "Bearer " + tok }

	t.Run("identified", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			hdr  map[string]string
			want string
		}{
			{"host", map[string]string{"Host": "a.example.test"}, "a /x"},
			{"host with port and case", map[string]string{"Host": "A.Example.TEST.:8080"}, "a /x"},
			{"subdomain", map[string]string{"Host": "team-b.tenants.test"}, "b /x"},
			{"header", map[string]string{"X-Tenant": "team-b"}, "b /x"},
			{"jwt", map[string]string{"Authorization": bearer(kit.sign(t, kit.key, good, "team-a"))}, "a /x"},
			{"jwt and agreeing host", map[string]string{"Host": "a.example.test", "Authorization": bearer(kit.sign(t, kit.key, good, "team-a"))}, "a /x"},
		} {
			status, body, _ := get(t, c, "GET", base+"/x", tc.hdr)
			if status != http.StatusOK || body != tc.want {
				t.Errorf("%s: %d %q, want 200 %q", tc.name, status, body, tc.want)
			}
		}
		// Access-log entries name the namespace.
		eventually(t, "access log with the namespace", func() bool {
			b, _ := os.ReadFile(accessLog)
			return strings.Contains(string(b), `"route_id":"team-b:web","namespace":"team-b"`)
		})
		// The tenant header does not reach the backend.
		get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-b"})
		if v := b.lastHeader().Get("X-Tenant"); v != "" {
			t.Errorf("backend got X-Tenant %q", v)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			hdr  map[string]string
			why  string
		}{
			{"nothing", map[string]string{"Host": "example.test"}, "no host"},
			{"unknown subdomain", map[string]string{"Host": "team-c.tenants.test"}, "names no namespace"},
			{"nested subdomain", map[string]string{"Host": "team-a.team-b.tenants.test"}, "no host"},
			{"host and header disagree", map[string]string{"Host": "a.example.test", "X-Tenant": "team-b"}, "different namespaces"},
			{"token and header disagree", map[string]string{"X-Tenant": "team-b", "Authorization": bearer(kit.sign(t, kit.key, good, "team-a"))}, "different namespaces"},
			{"wrong key", map[string]string{"Authorization": bearer(kit.sign(t, kit.other, good, "team-a"))}, "signature"},
			{"alg none", map[string]string{"Authorization": bearer(unsigned(map[string]any{"aud": "sentinel", "exp": now.Add(time.Hour).Unix(), "tenant": "team-a"}))}, "accepted algorithm"},
			{"hmac with the public key", map[string]string{"Authorization": bearer(kit.hmacWithPublicKey(t, good, "team-a"))}, "accepted algorithm"},
			{"expired", map[string]string{"Authorization": bearer(kit.sign(t, kit.key, expired, "team-a"))}, "expired"},
			{"wrong audience", map[string]string{"Authorization": bearer(kit.sign(t, kit.key, otherAud, "team-a"))}, "audience"},
			{"no expiry", map[string]string{"Authorization": bearer(kit.sign(t, kit.key, noExp, "team-a"))}, "no exp"},
			{"forged token, good header", map[string]string{"X-Tenant": "team-a", "Authorization": bearer(kit.sign(t, kit.other, good, "team-a"))}, "signature"},
		} {
			status, body, _ := get(t, c, "GET", base+"/a-secret", tc.hdr)
			if status != http.StatusMisdirectedRequest || !strings.Contains(body, tc.why) {
				t.Errorf("%s: %d %q, want 421 with %q", tc.name, status, body, tc.why)
			}
		}
	})

	t.Run("path tricks stay in the tenant", func(t *testing.T) {
		for _, p := range []string{"/a-secret", "/A-SECRET", "/x/../a-secret", "/%61-secret", "//a-secret"} {
			status, body, _ := get(t, c, "GET", base+p, map[string]string{"Host": "team-b.tenants.test"})
			if status != http.StatusOK || !strings.HasPrefix(body, "b ") {
				t.Errorf("team-b GET %s: %d %q, want team-b's own route", p, status, body)
			}
		}
		// Global routes serve every tenant.
		if status, _, _ := get(t, c, "GET", base+"/health", map[string]string{"Host": "team-b.tenants.test"}); status != http.StatusOK {
			t.Errorf("global health route: %d", status)
		}
	})

	t.Run("bound listener serves only its namespace", func(t *testing.T) {
		for _, hdr := range []map[string]string{{"Host": "team-b.tenants.test"}, {"X-Tenant": "team-b"}, nil} {
			status, body, _ := get(t, c, "GET", "http://"+aOnly+"/x", hdr)
			if status != http.StatusOK || body != "a /x" {
				t.Errorf("a-only listener %v: %d %q, want team-a", hdr, status, body)
			}
		}
		// The global routes are not on it either.
		if status, body, _ := get(t, c, "GET", "http://"+aOnly+"/shared", nil); !strings.HasPrefix(body, "a ") {
			t.Errorf("a-only listener /shared: %d %q, want team-a's route", status, body)
		}
	})

	t.Run("rate limit per tenant", func(t *testing.T) {
		limited := 0
		for range 6 {
			if status, _, _ := get(t, c, "GET", base+"/shared", map[string]string{"X-Tenant": "team-a"}); status == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("team-a was never limited")
		}
		for i := range 3 {
			if status, body, _ := get(t, c, "GET", base+"/shared", map[string]string{"X-Tenant": "team-b"}); status != http.StatusOK {
				t.Fatalf("team-b request %d after team-a exhausted its limit: %d %q", i+1, status, body)
			}
		}
	})

	t.Run("scoped metrics view", func(t *testing.T) {
		// Traffic for both tenants and a global route first.
		get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-a"})
		get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-b"})
		get(t, c, "GET", base+"/health", map[string]string{"X-Tenant": "team-b"})
		status, body, _ := get(t, c, "GET", base+"/a-metrics", map[string]string{"X-Tenant": "team-a"})
		if status != 200 || !strings.Contains(body, `route="team-a:web"`) || !strings.Contains(body, `upstream="team-a:api"`) || !strings.Contains(body, `namespace="team-a"`) {
			t.Fatalf("team-a's metrics: %d\n%s", status, body)
		}
		for _, other := range []string{"team-b", `route="health"`, `route="shared"`, `upstream="common"`, "go_goroutines"} {
			if strings.Contains(body, other) {
				t.Errorf("team-a's metrics show %s", other)
			}
		}
		// team-b cannot reach team-a's view.
		if _, body, _ := get(t, c, "GET", base+"/a-metrics", map[string]string{"X-Tenant": "team-b"}); body != "b /a-metrics" {
			t.Errorf("team-b GET /a-metrics: %q", body)
		}
	})

	t.Run("scoped API tokens", func(t *testing.T) {
		call := func(tok, method, path, body string) (int, string) {
			t.Helper()
			req, err := http.NewRequest(method, "http://"+api+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var sb strings.Builder
			_, _ = fmt.Fprint(&sb, readAll(res))
			return res.StatusCode, sb.String()
		}
		ids := func(body string) []string {
			var list []struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			var out []string
			for _, e := range list {
				out = append(out, e.ID)
			}
			return out
		}
		if s, body := call("a-token", "GET", "/api/v1/upstreams", ""); s != 200 || strings.Join(ids(body), ",") != "team-a:api" {
			t.Errorf("team-a upstream list: %d %v", s, ids(body))
		}
		if s, body := call("a-token", "GET", "/api/v1/routes", ""); s != 200 || strings.Join(ids(body), ",") != "team-a:metrics,team-a:secret,team-a:web" {
			t.Errorf("team-a route list: %d %v", s, ids(body))
		}
		if s, body := call("root-token", "GET", "/api/v1/upstreams", ""); s != 200 || len(ids(body)) != 3 {
			t.Errorf("unscoped upstream list: %d %v", s, ids(body))
		}
		for _, tc := range []struct{ tok, method, path, body string }{
			{"a-token", "GET", "/api/v1/upstreams/team-b:api", ""},
			{"a-token", "GET", "/api/v1/upstreams/common", ""},
			{"a-token", "GET", "/api/v1/upstreams/team-b:nonexistent", ""},
			{"a-token", "POST", "/api/v1/upstreams/team-b:api/drain", ""},
			{"a-token", "PATCH", "/api/v1/upstreams/team-b:api/targets/" + b.addr, `{"weight":5}`},
			{"a-token", "PUT", "/api/v1/routes/team-b:web/enabled", `{"enabled":false}`},
			{"a-token", "PUT", "/api/v1/routes/shared/enabled", `{"enabled":false}`},
			{"a-token", "GET", "/api/v1/agents", ""},
			{"a-token", "GET", "/api/v1/state", ""},
			{"b-token", "POST", "/api/v1/config/reload", ""},
			{"b-token", "POST", "/api/v1/upstreams", `{"id":"team-a:x","targets":[{"address":"127.0.0.1:1"}]}`},
			{"b-token", "POST", "/api/v1/upstreams", `{"id":"team-ab:x","targets":[{"address":"127.0.0.1:1"}]}`},
			{"a-token", "POST", "/api/v1/upstreams", `{"id":"x","targets":[{"address":"127.0.0.1:1"}]}`}, // operate: no creating
			{"b-token", "PUT", "/api/v1/upstreams/team-a:api/targets", `{"targets":[{"address":"127.0.0.1:1"}]}`},
			{"b-token", "DELETE", "/api/v1/upstreams/team-a:api/targets/" + a.addr, ""},
		} {
			if s, body := call(tc.tok, tc.method, tc.path, tc.body); s != http.StatusForbidden {
				t.Errorf("%s %s %s: %d %s, want 403", tc.tok, tc.method, tc.path, s, body)
			}
		}
		// Its own namespace it may operate.
		if s, body := call("b-token", "PUT", "/api/v1/routes/team-b:web/enabled", `{"enabled":false}`); s != 200 {
			t.Fatalf("team-b disables its route: %d %s", s, body)
		}
		if s, _, _ := get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-b"}); s != http.StatusServiceUnavailable {
			t.Errorf("team-b's disabled route: %d, want 503", s)
		}
		if s, body, _ := get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-a"}); s != 200 || body != "a /x" {
			t.Errorf("team-a after team-b disabled its route: %d %q", s, body)
		}
		if s, body := call("b-token", "PUT", "/api/v1/routes/team-b:web/enabled", `{"enabled":true}`); s != 200 {
			t.Fatalf("team-b enables its route: %d %s", s, body)
		}
		if s, body := call("a-token", "POST", "/api/v1/upstreams/team-a:api/drain", ""); s != 200 {
			t.Errorf("team-a drains its upstream: %d %s", s, body)
		}
		// team-b creates upstreams in its namespace only: an unqualified
		// id is qualified, nothing was made by the refused calls above.
		if s, body := call("b-token", "POST", "/api/v1/upstreams", `{"id":"canary","targets":[{"address":"`+b.addr+`"}]}`); s != http.StatusCreated || !strings.Contains(body, `"id":"team-b:canary"`) {
			t.Errorf("team-b creates canary: %d %s", s, body)
		}
		if s, body := call("b-token", "POST", "/api/v1/upstreams", `{"id":"team-b:svc:db"}`); s != http.StatusCreated {
			t.Errorf("team-b creates team-b:svc:db: %d %s", s, body)
		}
		if s, body := call("b-token", "GET", "/api/v1/upstreams", ""); s != 200 || strings.Join(ids(body), ",") != "team-b:api,team-b:canary,team-b:svc:db" {
			t.Errorf("team-b upstream list after creating: %d %v", s, ids(body))
		}
		if s, body := call("a-token", "GET", "/api/v1/upstreams", ""); s != 200 || strings.Join(ids(body), ",") != "team-a:api" {
			t.Errorf("team-a sees team-b's new upstreams: %d %v", s, ids(body))
		}
		if s, body := call("root-token", "GET", "/api/v1/upstreams", ""); s != 200 || strings.Join(ids(body), ",") != "common,team-a:api,team-b:api,team-b:canary,team-b:svc:db" {
			t.Errorf("all upstreams after creating: %d %v", s, ids(body))
		}
		if s, body := call("a-token", "GET", "/api/v1/upstreams/team-b:canary", ""); s != http.StatusForbidden {
			t.Errorf("team-a reads team-b's new upstream: %d %s", s, body)
		}
	})
}

func readAll(res *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
