package integration

import (
	"bytes"
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
)

// apiClient calls the control-plane API with a token.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func (c apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		json.Unmarshal(raw, &out)
	}
	return res.StatusCode, out
}

// slowBackend answers after a delay and counts request starts.
type slowBackend struct {
	addr   string
	starts atomic.Int64
	delay  time.Duration
}

func startSlow(t *testing.T, delay time.Duration) *slowBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &slowBackend{addr: l.Addr().String(), delay: delay}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/health") {
			return
		}
		b.starts.Add(1)
		time.Sleep(b.delay)
		fmt.Fprintf(w, "slow %s", r.URL.Path)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// load runs GET requests against url from n workers until stop is
// closed, counting failures (transport errors and non-200 answers).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startLoad(urls []string, n int) *load {
	l := &load{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		l.wg.Add(1)
		go func(i int) {
			defer l.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for j := 0; ; j++ {
				select {
				case <-l.stop:
					return
				default:
				}
				url := urls[(i+j)%len(urls)]
				res, err := c.Get(url)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					l.fail(fmt.Sprintf("%s: %d", url, res.StatusCode))
					continue
				}
				l.ok.Add(1)
			}
		}(i)
	}
	return l
}

func (l *load) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, s)
	}
	l.mu.Unlock()
}

func (l *load) finish() { close(l.stop); l.wg.Wait() }

// TestLiveOperationsUnderLoad changes upstreams through the control-plane
// API and Caddy's /config while a real client keeps sending requests:
// add a target, shift weights, drain a target serving slow requests,
// remove it, add an upstream and a route via /config. No request may fail;
// the drained target gets nothing new.
func TestLiveOperationsUnderLoad(t *testing.T) {
	requireMigrateReq(t)
	b1, b2, b3, b4 := startBackend(t, "b1"), startSlow(t, 150*time.Millisecond), startBackend(t, "b3"), startBackend(t, "b4")
	listen, apiAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	stateFile := filepath.Join(t.TempDir(), "state.json")
	kdl := fmt.Sprintf(`
system { }
listeners {
    listener "main" { address "%s"; }
}
routes {
    route "api" {
        matches { path-prefix "/api"; }
        upstream "pool"
    }
}
upstreams {
    upstream "pool" {
        target "%s"
        target "%s"
        load-balancing "weighted"
        health-check {
            type "http" { path "/health"; }
            interval-secs 1
        }
    }
}
admin-api {
    address "%s"
    allowed-target-networks "127.0.0.0/8"
    auth {
        token "admin-token"
        token "read-token" scope="read"
    }
    state-file "%s"
}
`, listen, b1.addr, b2.addr, apiAddr, stateFile)
	loadKDL(t, kdl)
	api := apiClient{t: t, base: "http://" + apiAddr, token: "admin-token"}

	// Authentication is required, scopes are enforced.
	if code, _ := (apiClient{t: t, base: api.base}).do("GET", "/api/v1/upstreams", nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := (apiClient{t: t, base: api.base, token: "read-token"}).do("POST", "/api/v1/upstreams/pool/drain", nil); code != 403 {
		t.Fatalf("read token on a mutation: %d", code)
	}

	ld := startLoad([]string{"http://" + listen + "/api/a", "http://" + listen + "/api/b"}, 6)
	time.Sleep(300 * time.Millisecond)

	// 1. Add a target.
	if code, body := api.do("POST", "/api/v1/upstreams/pool/targets", map[string]any{"address": b3.addr}); code/100 != 2 {
		t.Fatalf("add target: %d %v", code, body)
	}
	eventually(t, "the new target serves", func() bool { return b3.hits.Load() > 10 })

	// 2. Shift weights towards b1.
	if code, body := api.do("PATCH", "/api/v1/upstreams/pool/targets/"+b1.addr, map[string]any{"weight": 5}); code != 200 {
		t.Fatalf("weight: %d %v", code, body)
	}
	time.Sleep(200 * time.Millisecond)

	// 3. Drain the slow target while it serves requests.
	eventually(t, "slow requests in flight", func() bool {
		_, up := api.do("GET", "/api/v1/upstreams/pool", nil)
		return inFlight(up, b2.addr) > 0
	})
	if code, body := api.do("POST", "/api/v1/upstreams/pool/targets/"+b2.addr+"/drain", nil); code != 200 {
		t.Fatalf("drain: %d %v", code, body)
	}
	drainedAt := b2.starts.Load()
	_, up := api.do("GET", "/api/v1/upstreams/pool", nil)
	if st := targetField(up, b2.addr, "state"); st != "draining" && st != "drained" {
		t.Fatalf("state after drain: %v", st)
	}
	eventually(t, "the target to be drained", func() bool {
		_, up := api.do("GET", "/api/v1/upstreams/pool", nil)
		return targetField(up, b2.addr, "state") == "drained"
	})
	time.Sleep(300 * time.Millisecond)
	if n := b2.starts.Load() - drainedAt; n > 0 {
		t.Errorf("the draining target received %d new requests", n)
	}

	// 4. Remove it: one call.
	if code, body := api.do("DELETE", "/api/v1/upstreams/pool/targets/"+b2.addr, nil); code != 200 && code != 204 {
		t.Fatalf("remove: %d %v", code, body)
	}

	// 5. Add an upstream and a route to it through Caddy's /config.
	admin := fmt.Sprintf("http://localhost:%d", adminPort)
	post := func(path string, body string) {
		req, _ := http.NewRequest("POST", admin+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, raw)
		}
	}
	post("/config/apps/sentinel/upstreams", fmt.Sprintf(`{"id":"fresh","targets":[{"address":%q}]}`, b4.addr))
	put, _ := http.NewRequest("PUT", admin+"/config/apps/http/servers/main/routes/0", strings.NewReader(
		`{"match":[{"sentinel":{"path_prefix":["/fresh"]}}],"handle":[{"handler":"sentinel_route","route":"fresh"},{"handler":"reverse_proxy","dynamic_upstreams":{"source":"sentinel","upstream":"fresh"},"transport":{"protocol":"sentinel"}}],"terminal":true}`))
	put.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(put); err != nil || res.StatusCode != 200 {
		t.Fatalf("PUT route: %v %v", err, res)
	}
	if status, body, _ := get(t, client(), "GET", "http://"+listen+"/fresh/x", nil); status != 200 || body != "b4 /fresh/x" {
		t.Errorf("new route: %d %q", status, body)
	}
	time.Sleep(300 * time.Millisecond)
	ld.finish()

	if ld.failed.Load() != 0 {
		t.Errorf("%d of %d requests failed: %v", ld.failed.Load(), ld.ok.Load()+ld.failed.Load(), ld.failures)
	}
	if ld.ok.Load() < 500 {
		t.Errorf("only %d requests sent: the load is too light to prove anything", ld.ok.Load())
	}
	t.Logf("%d requests, none failed; b1 %d, b2 %d (drained), b3 %d", ld.ok.Load(), b1.hits.Load(), b2.starts.Load(), b3.hits.Load())

	// The API's changes survived the /config reloads, and were saved.
	_, up = api.do("GET", "/api/v1/upstreams/pool", nil)
	if targetField(up, b3.addr, "address") != b3.addr || targetField(up, b2.addr, "address") != nil {
		t.Errorf("after /config reloads: %v", up)
	}
	state, err := os.ReadFile(stateFile)
	if err != nil || !strings.Contains(string(state), b3.addr) {
		t.Errorf("state file: %v %s", err, state)
	}
}

// requireMigrateReq makes sure Linux moves the connections queued on a
// closing socket to the newer config's socket (Caddy binds one
// SO_REUSEPORT socket per config; without this setting the kernel resets
// them, see docs/operations.md). It sets it when it can (root), else skips.
func requireMigrateReq(t *testing.T) {
	t.Helper()
	const path = "/proc/sys/net/ipv4/tcp_migrate_req"
	b, err := os.ReadFile(path)
	if err != nil {
		testutil.Missing(t, "%s: %v (Linux ≥ 5.14 needed for reloads that lose no new connection)", path, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		testutil.Missing(t, "net.ipv4.tcp_migrate_req is 0 and cannot be set (%v): run `sysctl -w net.ipv4.tcp_migrate_req=1` as root", err)
	}
}

// targetField returns a field of the target with the address in an
// upstream as the API shows it.
func targetField(up map[string]any, addr, field string) any {
	ts, _ := up["targets"].([]any)
	for _, t := range ts {
		m, _ := t.(map[string]any)
		if m["address"] == addr {
			return m[field]
		}
	}
	return nil
}

func inFlight(up map[string]any, addr string) float64 {
	v, _ := targetField(up, addr, "in_flight").(float64)
	return v
}
