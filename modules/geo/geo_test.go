package geo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// provision provisions h as Caddy would (with ctx's metrics registry)
// and cleans it up after the test.
func provision(t *testing.T, h *Handler) (*Handler, *prometheus.Registry) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h, ctx.GetMetricsRegistry()
}

// seen is what the next handler got: its X-GeoIP-Country headers.
type seen struct{ country []string }

// do sends one request through h from the client ip (as Caddy's
// client_ip variable) with the headers hdr.
func do(t *testing.T, h *Handler, ip string, hdr map[string]string) (*httptest.ResponseRecorder, *seen) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	r.RemoteAddr = "127.0.0.1:12345"
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	r = r.WithContext(ctx)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	var s *seen
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		s = &seen{country: r.Header.Values(CountryHeader)}
		_, err := w.Write([]byte("ok"))
		return err
	})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	return w, s
}

func TestDecisions(t *testing.T) {
	db := writeDB(t, t.TempDir(), "geo.mmdb", testNetworks)
	closed := func(h *Handler) *Handler { h.OnFailure = "closed"; return h }
	tests := []struct {
		name    string
		h       *Handler
		ip      string
		status  int
		country string // the upstream's X-GeoIP-Country ("" none; "-" not reached)
	}{
		{"block listed", &Handler{Countries: []string{"cn", "SE"}}, "175.16.199.7", 403, "-"},
		{"block other", &Handler{Countries: []string{"CN"}}, "81.2.69.142", 200, "GB"},
		{"block ipv4-mapped", &Handler{Countries: []string{"CN"}}, "::ffff:175.16.199.7", 403, "-"},
		{"block ipv6", &Handler{Countries: []string{"FR"}}, "2001:db8::1", 403, "-"},
		{"allow listed", &Handler{Action: "allow", Countries: []string{"GB"}}, "81.2.69.142", 200, "GB"},
		{"allow other", &Handler{Action: "allow", Countries: []string{"GB"}}, "216.160.83.56", 403, "-"},
		{"log-only listed", &Handler{Action: "log-only", Countries: []string{"CN"}}, "175.16.199.7", 200, "CN"},
		{"log-only no countries", &Handler{Action: "log_only"}, "89.160.20.1", 200, "SE"},
		{"registered country", &Handler{Countries: []string{"PH"}}, "202.196.224.9", 403, "-"},
		{"not found open", &Handler{Countries: []string{"CN"}}, "8.8.8.8", 200, ""},
		{"not found closed", closed(&Handler{Countries: []string{"CN"}}), "8.8.8.8", 403, "-"},
		{"no country open", &Handler{Action: "allow", Countries: []string{"GB"}}, "192.0.2.1", 200, ""},
		{"no country closed", closed(&Handler{Action: "allow", Countries: []string{"GB"}}), "192.0.2.1", 403, "-"},
		{"bad client address closed", closed(&Handler{Countries: []string{"CN"}}), "not-an-ip", 403, "-"},
		{"bad client address open", &Handler{Countries: []string{"CN"}}, "not-an-ip", 200, ""},
		{"status and message", &Handler{Countries: []string{"CN"}, StatusCode: 451, Message: "not here"}, "175.16.199.7", 451, "-"},
		{"no header", &Handler{Countries: []string{"CN"}, CountryHeader: new(bool)}, "81.2.69.142", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.Database = db
			h, _ := provision(t, tc.h)
			w, s := do(t, h, tc.ip, map[string]string{CountryHeader: "ZZ"})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			switch {
			case tc.country == "-":
				if s != nil {
					t.Fatal("blocked request reached the next handler")
				}
				want := http.StatusText(tc.status)
				if tc.h.Message != "" {
					want = tc.h.Message
				}
				if w.Body.String() != want {
					t.Errorf("body %q, want %q", w.Body.String(), want)
				}
			case s == nil:
				t.Fatal("request did not reach the next handler")
			case tc.country == "" && len(s.country) != 0:
				t.Errorf("upstream got %s %q, want none (the client's removed)", CountryHeader, s.country)
			case tc.country != "" && (len(s.country) != 1 || s.country[0] != tc.country):
				t.Errorf("upstream got %s %q, want %q", CountryHeader, s.country, tc.country)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	db := writeDB(t, t.TempDir(), "geo.mmdb", testNetworks)
	h, reg := provision(t, &Handler{Database: db, Name: "f1", Countries: []string{"CN"}, OnFailure: "closed"})
	do(t, h, "175.16.199.7", nil) // blocked: country
	do(t, h, "81.2.69.142", nil)  // allowed
	do(t, h, "81.2.69.143", nil)  // allowed
	do(t, h, "8.8.8.8", nil)      // not found: blocked
	do(t, h, "bogus", nil)        // error: blocked
	// A second handler of the same registry shares the collectors.
	h2, _ := provision(t, &Handler{Database: db, Name: "f2", Action: "log_only"})
	h2.metrics, _ = newMetrics(reg, "f2")
	do(t, h2, "175.16.199.7", nil)

	for _, c := range []struct {
		c    prometheus.Collector
		want string
	}{
		{h.metrics.allowed, "2"}, {h.metrics.blockedCountry, "1"}, {h.metrics.blockedFailure, "2"},
		{h.metrics.failedNotFound, "1"}, {h.metrics.failedErr, "1"}, {h2.metrics.allowed, "1"},
	} {
		if got := promtest.ToFloat64(c.c); strconv.FormatFloat(got, 'f', -1, 64) != c.want {
			t.Errorf("%v = %v, want %s", c.c, got, c.want)
		}
	}
	n, err := promtest.GatherAndCount(reg, AllowedName, BlockedName, LookupFailuresName)
	if err != nil || n != 10 {
		t.Errorf("gathered %d series (%v), want 10 (5 a filter)", n, err)
	}
	if err := promtest.GatherAndCompare(reg, strings.NewReader(`
# HELP sentinel_geo_allowed_total Requests a GeoIP filter let through (log-only and fail-open ones included).
# TYPE sentinel_geo_allowed_total counter
sentinel_geo_allowed_total{filter="f1"} 2
sentinel_geo_allowed_total{filter="f2"} 1
`), AllowedName); err != nil {
		t.Error(err)
	}
}

func TestBadSettings(t *testing.T) {
	db := writeDB(t, t.TempDir(), "geo.mmdb", testNetworks)
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{Countries: []string{"CN"}}, "database: the path of a MaxMind .mmdb file is required"},
		{Handler{Database: db}, "countries: action block needs at least one country code"},
		{Handler{Database: db, Action: "allow"}, "countries: action allow needs at least one country code"},
		{Handler{Database: db, Action: "deny", Countries: []string{"CN"}}, `action "deny": expected block, allow or log_only`},
		{Handler{Database: db, Countries: []string{"UK"}}, `countries: "UK" is not an ISO 3166-1 alpha-2 country code`},
		{Handler{Database: db, Countries: []string{"USA"}}, `"USA" is not an ISO 3166-1 alpha-2`},
		{Handler{Database: db, Countries: []string{"CN"}, OnFailure: "ajar"}, `on_failure "ajar": expected open or closed`},
		{Handler{Database: db, Countries: []string{"CN"}, StatusCode: 302}, "status_code 302: must be 4xx or 5xx"},
		{Handler{Database: filepath.Join(t.TempDir(), "nope.mmdb"), Countries: []string{"CN"}}, "nope.mmdb\": no such file"},
		{Handler{Database: t.TempDir(), Countries: []string{"CN"}}, "not a regular file"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := tc.h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.h, err, tc.want)
		}
	}
	if err := new(Handler).Validate(); err == nil {
		t.Error("Validate of an unprovisioned handler passed")
	}
}

// TestNotADatabase: a file that is not a MaxMind database fails the load
// with an error that names it but shows nothing of its content.
func TestNotADatabase(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"secret.mmdb": "password=hunter2-very-secret\n",
		"empty.mmdb":  "",
		// The metadata marker followed by garbage that the reader tries
		// to decode.
		"marker.mmdb": "password=hunter2-very-secret\xab\xcd\xefMaxMind.com\x5fpassword=hunter2-very-secret",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := (&Handler{Database: path, Countries: []string{"CN"}}).Provision(ctx)
		cancel()
		if err == nil {
			t.Fatalf("%s: loaded", name)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "not a valid MaxMind DB (.mmdb) file") || strings.Contains(msg, "hunter2") {
			t.Errorf("%s: error %q", name, msg)
		}
	}
}

// TestUnreadableDatabase: a database path that cannot be read (a folder,
// which root cannot read either; a file without permissions, for other
// users) fails the load with the path and the reason.
func TestUnreadableDatabase(t *testing.T) {
	provision := func(path string) error {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		return (&Handler{Database: path, Countries: []string{"CN"}}).Provision(ctx)
	}
	dir := t.TempDir()
	if err := provision(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a folder as the database: %v", err)
	}
	if os.Geteuid() == 0 {
		return // root reads a file without permissions
	}
	path := writeDB(t, dir, "geo.mmdb", testNetworks)
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := provision(path); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a file without permissions: %v", err)
	}
}

// TestSharedAndReleased: handlers reading one file share one database,
// which is closed when the last one is cleaned up.
func TestSharedAndReleased(t *testing.T) {
	dir := t.TempDir()
	db := writeDB(t, dir, "geo.mmdb", testNetworks)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &Handler{Database: db, Countries: []string{"CN"}}
	// The same file by another spelling of its path.
	t.Chdir(dir)
	b := &Handler{Database: "./geo.mmdb", Countries: []string{"US"}}
	for _, h := range []*Handler{a, b} {
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a.db != b.db {
		t.Fatal("two handlers of one file have two databases")
	}
	if n, ok := databases.References(a.db.path); !ok || n != 2 {
		t.Fatalf("references %d, %v", n, ok)
	}
	first := a.db
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil { // twice: no effect
		t.Fatal(err)
	}
	if n, _ := databases.References(first.path); n != 1 {
		t.Fatalf("references %d after one cleanup", n)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := databases.References(first.path); ok {
		t.Fatal("database still open after the last cleanup")
	}
	select {
	case <-first.done:
	case <-time.After(5 * time.Second):
		t.Fatal("file watch still running")
	}
}

// TestReload: a changed file is read again, by the watch and by a config
// loaded after the change; a file that went bad keeps the old data.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeDB(t, dir, "geo.mmdb", map[string]string{"81.2.69.0/24": "GB"})
	h, _ := provision(t, &Handler{Database: path, Countries: []string{"CN"}, ReloadInterval: caddy.Duration(20 * time.Millisecond)})
	if w, _ := do(t, h, "81.2.69.142", nil); w.Code != 200 {
		t.Fatalf("status %d before the change", w.Code)
	}
	// Same size, another country: a new modification time.
	time.Sleep(10 * time.Millisecond)
	writeDB(t, dir, "geo.mmdb", map[string]string{"81.2.69.0/24": "CN"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if w, _ := do(t, h, "81.2.69.142", nil); w.Code == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch did not reload the changed file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A broken file: the data loaded before stays.
	if err := os.WriteFile(path, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if w, _ := do(t, h, "81.2.69.142", nil); w.Code != 403 {
		t.Fatalf("status %d after a broken file replaced the database", w.Code)
	}

	// Each bad version of the file is reported once, not at every
	// check; a missing file too.
	db := &database{path: path}
	if err := db.load(); err == nil {
		t.Fatal("a broken file loaded")
	}
	if _, err := db.reload(); err == nil {
		t.Error("a broken file: no error")
	}
	if _, err := db.reload(); err != nil {
		t.Errorf("the same broken file reported again: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := db.reload(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := db.reload(); err != nil {
		t.Errorf("the missing file reported again: %v", err)
	}

	// Without a watch, a config loaded later (sharing the database)
	// reloads it.
	path2 := writeDB(t, dir, "geo2.mmdb", map[string]string{"81.2.69.0/24": "GB"})
	a, _ := provision(t, &Handler{Database: path2, Countries: []string{"CN"}, ReloadInterval: -1})
	time.Sleep(10 * time.Millisecond)
	writeDB(t, dir, "geo2.mmdb", map[string]string{"81.2.69.0/24": "CN"})
	if w, _ := do(t, a, "81.2.69.142", nil); w.Code != 200 {
		t.Fatalf("status %d: reloaded without a watch", w.Code)
	}
	provision(t, &Handler{Database: path2, Countries: []string{"US"}})
	if w, _ := do(t, a, "81.2.69.142", nil); w.Code != 403 {
		t.Fatalf("status %d: a new config did not reload the changed file", w.Code)
	}
}

// TestEnvPlaceholder: the database path may come from the environment.
func TestEnvPlaceholder(t *testing.T) {
	t.Setenv("SENTINEL_GEO_TEST_DB", writeDB(t, t.TempDir(), "geo.mmdb", testNetworks))
	h, _ := provision(t, &Handler{Database: "{env.SENTINEL_GEO_TEST_DB}", Countries: []string{"GB"}})
	if w, _ := do(t, h, "81.2.69.142", nil); w.Code != 403 {
		t.Fatalf("status %d", w.Code)
	}
}

func TestKnownCountry(t *testing.T) {
	for _, c := range []string{"US", "GB", "DE", "XK", "ZW", "AD"} {
		if !KnownCountry(c) {
			t.Errorf("%s unknown", c)
		}
	}
	for _, c := range []string{"UK", "EU", "us", "", "U", "USA", "D ", "SD ", " A", "DA"} {
		if KnownCountry(c) {
			t.Errorf("%q known", c)
		}
	}
	if c, ok := NormalizeCountry(" de "); !ok || c != "DE" {
		t.Errorf("NormalizeCountry: %q %v", c, ok)
	}
}
