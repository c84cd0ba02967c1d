package integration

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestMultiTenancyDocExample runs the first example of
// docs/multi-tenancy.md with test addresses and key set: each tenant
// reaches its own routes on the shared listener, team-b reaches team-a's
// exported upstream only through its own catalog route, the bound
// listeners serve their namespace or service only, and the scoped tokens
// list their namespace only.
func TestMultiTenancyDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/multi-tenancy.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```kdl\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no kdl example in docs/multi-tenancy.md")
	}
	auth, a, b, ledger := startBackend(t, "auth"), startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "ledger")
	shared, internal, billing, api := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	kit := newJWTKit(t)
	kdl := strings.NewReplacer(
		`"127.0.0.1:8080"`, `"`+shared+`"`, `"127.0.0.1:8081"`, `"`+internal+`"`, `"127.0.0.1:8082"`, `"`+billing+`"`,
		`"127.0.0.1:9900"`, `"`+api+`"`,
		`"127.0.0.1:3000"`, `"`+auth.addr+`"`, `"127.0.0.1:3001"`, `"`+a.addr+`"`, `"127.0.0.1:3002"`, `"`+b.addr+`"`, `"127.0.0.1:3003"`, `"`+ledger.addr+`"`,
		`"/etc/sentinel/tenants-jwks.json"`, `"`+kit.file+`"`,
		"system { }", "system { }\n",
	).Replace(string(m[1]))
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:3001", "/etc/sentinel"} {
		if strings.Contains(kdl, addr) {
			t.Fatalf("the example changed: %s is left", addr)
		}
	}
	t.Setenv("ADMIN_API_TOKEN", "root-token")
	t.Setenv("TEAM_A_TOKEN", "team-a-token")
	t.Setenv("TEAM_B_TOKEN", "team-b-token")
	loadKDL(t, kdl)
	c := client()
	tok := kit.sign(t, kit.key, jwt.Claims{Audience: jwt.Audience{"sentinel"}, Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}, "team-b")

	for _, tc := range []struct {
		name, url string
		hdr       map[string]string
		status    int
		body      string
	}{
		{"team-a by host", "http://" + shared + "/x", map[string]string{"Host": "shop.example.com"}, 200, "a /x"},
		{"team-b by subdomain", "http://" + shared + "/x", map[string]string{"Host": "team-b.tenants.example.com"}, 200, "b /x"},
		{"team-b by token", "http://" + shared + "/x", map[string]string{"Authorization": "Bearer " + tok}, 200, "b /x"},
		{"team-b's catalog uses team-a's export", "http://" + shared + "/catalog", map[string]string{"X-Tenant": "team-b"}, 200, "a /catalog"},
		{"team-a has no catalog route", "http://" + shared + "/catalog", map[string]string{"X-Tenant": "team-a"}, 200, "a /catalog"},
		{"global route for a tenant", "http://" + shared + "/login", map[string]string{"X-Tenant": "team-a"}, 200, "auth /login"},
		{"unidentified", "http://" + shared + "/x", nil, 421, `"error":"unknown tenant"`},
		{"team-a's listener", "http://" + internal + "/pay", map[string]string{"X-Tenant": "team-b"}, 200, "a /pay"},
		{"billing's listener", "http://" + billing + "/pay", nil, 200, "ledger /pay"},
		{"billing's listener has billing's routes only", "http://" + billing + "/x", map[string]string{"Host": "shop.example.com"}, 404, ""},
	} {
		status, body, _ := get(t, c, "GET", tc.url, tc.hdr)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, body, tc.status, tc.body)
		}
	}
	// team-b's limits { }: its bodies are limited, team-a's are not.
	for _, tc := range []struct {
		tenant string
		size   int
		status int
	}{{"team-b", 100 << 10, http.StatusRequestEntityTooLarge}, {"team-b", 1 << 10, 200}, {"team-a", 100 << 10, 200}} {
		req, _ := http.NewRequest("POST", "http://"+shared+"/upload", strings.NewReader(strings.Repeat("x", tc.size)))
		req.Header.Set("X-Tenant", tc.tenant)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(res)
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s POST %d bytes: %d, want %d", tc.tenant, tc.size, res.StatusCode, tc.status)
		}
	}
	for tok, want := range map[string][]string{"team-a-token": {`"team-a:api"`}, "team-b-token": {`"team-b:api"`, `"team-b:billing:ledger"`}} {
		req, _ := http.NewRequest("GET", "http://"+api+"/api/v1/upstreams", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(res)
		res.Body.Close()
		ok := res.StatusCode == 200 && strings.Count(body, `"id"`) == len(want)
		for _, w := range want {
			ok = ok && strings.Contains(body, w)
		}
		if !ok {
			t.Errorf("%s lists %d %s, want only %s", tok, res.StatusCode, body, want)
		}
	}
}
