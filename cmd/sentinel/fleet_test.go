package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// fleetReplica is one built Sentinel process of a fleet sharing etcd.
type fleetReplica struct {
	*testutil.Process
	t           *testing.T
	listen, api string
}

// get returns the body of GET / on the replica's listener ("" on error).
func (r *fleetReplica) get(c *http.Client) string {
	res, err := c.Get("http://" + r.listen + "/")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func (r *fleetReplica) call(method, path, body string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(method, "http://"+r.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t0k")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestBinaryFleet runs three Sentinel processes sharing their API-made
// state through a real etcd: a change made on one replica is routed by
// all; a restarted replica starts from the fleet's state; with etcd down
// a change is refused with 503 and traffic goes on.
func TestBinaryFleet(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	bin := buildBinary(t)
	backend := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	a, b := backend("A"), backend("B")
	fleet := make([]*fleetReplica, 3)
	for i := range fleet {
		dir := t.TempDir()
		r := &fleetReplica{t: t, listen: testutil.FreeAddr(t), api: testutil.FreeAddr(t)}
		config := filepath.Join(dir, "sentinel.kdl")
		os.WriteFile(config, []byte(`system { }
listeners { listener "main" { address "`+r.listen+`"; }; }
routes { route "r" { upstream "u"; }; }
upstreams { upstream "u" { target "`+a+`"; }; }
admin-api {
    address "`+r.api+`"
    auth { token "${TOKEN}"; }
    allowed-target-networks "127.0.0.0/8"
    fleet { etcd { endpoints "`+etcd.Endpoint+`"; prefix "/fleet-test/"; dial-timeout "2s"; }; }
}
`), 0o644)
		r.Process = testutil.NewProcess(t, "replica "+r.listen,
			append(os.Environ(), "TOKEN=t0k", "CADDY_ADMIN="+testutil.FreeAddr(t), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir),
			bin, "run", "--config", config)
		r.Grace = 15 * time.Second
		r.Start()
		fleet[i] = r
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for i, r := range fleet {
		deadline := time.Now().Add(30 * time.Second)
		for r.get(client) != "A" {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d never served backend A", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// awaitAll waits until every running replica answers want.
	awaitAll := func(want string, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for _, r := range fleet {
			for r.get(client) != want {
				if time.Since(start) > limit {
					t.Fatalf("replica %s does not route to %s after %v", r.listen, want, limit)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return time.Since(start)
	}
	for i, to := range []struct{ name, addr string }{{"B", b}, {"A", a}, {"B", b}} {
		if code, body := fleet[i].call("PUT", "/api/v1/upstreams/u/targets", `{"targets":[{"address":"`+to.addr+`"}]}`); code != 200 {
			t.Fatalf("replica %d: PUT targets: %d %s", i, code, body)
		}
		t.Logf("change on replica %d routed by all replicas after %v", i, awaitAll(to.name, 10*time.Second))
	}

	// A replica that restarts starts from the fleet's state, including a
	// change made while it was down.
	fleet[2].Stop()
	if code, body := fleet[0].call("PUT", "/api/v1/upstreams/u/targets", `{"targets":[{"address":"`+a+`"}]}`); code != 200 {
		t.Fatalf("PUT targets: %d %s", code, body)
	}
	fleet[2].Start()
	deadline := time.Now().Add(30 * time.Second)
	for fleet[2].get(client) != "A" {
		if time.Now().After(deadline) {
			t.Fatal("the restarted replica does not route by the change made while it was down")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// etcd down: changes are refused with 503, traffic goes on.
	etcd.Stop()
	code, body := fleet[1].call("PUT", "/api/v1/upstreams/u/targets", `{"targets":[{"address":"`+b+`"}]}`)
	if code != http.StatusServiceUnavailable || strings.Contains(body, etcd.Endpoint) {
		t.Fatalf("change with etcd down: %d %s, want 503 without the store's details", code, body)
	}
	for i, r := range fleet {
		if got := r.get(client); got != "A" {
			t.Fatalf("replica %d with etcd down: %q, want A", i, got)
		}
	}
	etcd.Start()
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body = fleet[1].call("PUT", "/api/v1/upstreams/u/targets", `{"targets":[{"address":"`+b+`"}]}`)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("change after etcd came back: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("after etcd came back, routed by all after %v", awaitAll("B", 15*time.Second))
	_, body = fleet[2].call("GET", "/api/v1/state", "")
	if !strings.Contains(body, `"revision"`) || !strings.Contains(body, "etcd "+etcd.Endpoint) {
		t.Errorf("GET /api/v1/state: %s", body)
	}
}
