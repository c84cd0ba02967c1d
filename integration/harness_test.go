package integration

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/net/http2"

	_ "github.com/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// adminPort is the in-process Caddy's admin port for this package.
const adminPort = 2999

// sharedDir is the team's shared folder, beside the repository.
const sharedDir = "../../shared"

// corpusFile reads a file of the original's config corpus.
func corpusFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.Shared(t, "testdata/sentinel-configs"), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// backend is a real HTTP server on loopback that records what it got.
type backend struct {
	name  string
	addr  string
	srv   *http.Server
	hits  atomic.Int64
	mu    sync.Mutex
	paths []string
	last  http.Header
}

// startBackend starts a backend answering "name path" on every path, 200
// on /health and friends.
func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: l.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/health") { // active health checks; not counted
			w.WriteHeader(http.StatusOK)
			return
		}
		if false {
			w.WriteHeader(http.StatusOK)
			return
		}
		b.hits.Add(1)
		b.mu.Lock()
		b.paths = append(b.paths, r.URL.RequestURI())
		b.last = r.Header.Clone()
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
	}), ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) lastPath() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.paths) == 0 {
		return ""
	}
	return b.paths[len(b.paths)-1]
}

func (b *backend) lastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// withAdmin puts the test admin address in the config's system block.
func withAdmin(kdl string) string {
	admin := fmt.Sprintf("system {\n    caddy-admin \"localhost:%d\"\n", adminPort)
	for _, head := range []string{"system {", "server {"} {
		if strings.Contains(kdl, head) {
			return strings.Replace(kdl, head, strings.Replace(admin, "system {", head, 1), 1)
		}
	}
	return admin + "}\n" + kdl
}

// tester returns a caddytest tester on this package's admin port.
func tester(t testing.TB) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          adminPort,
		LoadRequestTimeout: 30 * time.Second,
		TestRequestTimeout: 10 * time.Second,
	})
}

// loadKDL posts the KDL config to the running Caddy with Content-Type
// text/kdl (the adapter runs inside Caddy).
func loadKDL(t testing.TB, kdl string) *caddytest.Tester {
	t.Helper()
	tc := tester(t)
	tc.InitServer(withAdmin(kdl), "kdl")
	return tc
}

// unloadOnCleanup loads a config with nothing but the admin endpoint when
// the test ends, before the test's temporary folders are removed (cleanups
// run last-registered first: call it after t.TempDir), so that apps
// writing into them (the audit trail's spool) have stopped by then.
func unloadOnCleanup(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		tester(t).InitServer(fmt.Sprintf(`{"admin":{"listen":"localhost:%d"}}`, adminPort), "json")
	})
}

// loadFile adapts a config file (so that includes resolve) and loads the
// JSON.
func loadFile(t *testing.T, path string) *caddytest.Tester {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := kdladapter.Adapt(path, []byte(withAdmin(string(src))), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	tc := tester(t)
	tc.InitServer(string(out), "json")
	return tc
}

// client is a plain HTTP/1.1 client that does not follow redirects.
func client() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: false},
	}
}

// h2Client speaks HTTP/2 over TLS and trusts any certificate.
func h2Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}, //nolint:gosec // test certificates
	}}
}

// get performs a request and returns status, body and headers.
func get(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), res.Header
}

// writeCert writes a self-signed certificate for the names to dir and
// returns the cert and key paths.
func writeCert(t *testing.T, dir string, names ...string) (string, string) {
	t.Helper()
	return testutil.WriteCert(t, dir, names...)
}

// eventually retries f until it returns true or the time runs out.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// jsonBody decodes a JSON body.
func jsonBody(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not JSON: %q", body)
	}
	return m
}
