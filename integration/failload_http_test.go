package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// adaptKDL adapts a KDL config (with the test admin address) to JSON.
func adaptKDL(t *testing.T, kdl string) []byte {
	t.Helper()
	out, _, err := kdladapter.Adapt("sentinel.kdl", []byte(withAdmin(kdl)), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFailedListenerLoadsNeverTouchTheRunningConfig: while clients send
// requests to the running KDL config A without pause, config B — A's
// listener routed to another upstream, plus a second listener whose
// address another socket holds — fails to load twenty times. Every
// request is answered by A: the sentinel app checks the http app's listen
// addresses while B is provisioned (reloading.CheckHTTPListeners), before
// any of B's servers starts. Without the check, B's http app started its
// servers one by one, and when the one on A's address came first, it took
// some of A's connections on its SO_REUSEPORT socket before the second
// failed to bind; those were answered by B or reset.
func TestFailedListenerLoadsNeverTouchTheRunningConfig(t *testing.T) {
	listen := testutil.FreeAddr(t)
	a, b := startBackend(t, "A"), startBackend(t, "B")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	config := func(backend, extra string) string {
		kdl := fmt.Sprintf(`
listeners {
    listener "main" { address "%s"; default-route "r"; }
%s}
routes {
    route "r" { upstream "pool"; }
}
upstreams {
    upstream "pool" { target "%s"; }
}
`, listen, extra, backend)
		return kdl
	}
	tc := tester(t)
	tc.InitServer(string(adaptKDL(t, config(a.addr, ""))), "json")
	answer := func() string { return testutil.HTTPAnswer("http://" + listen + "/") }
	if got := answer(); !strings.HasPrefix(got, "200 A") {
		t.Fatalf("config A: %s", got)
	}
	cfgB := adaptKDL(t, config(b.addr, fmt.Sprintf("    listener \"admin\" { address \"%s\"; default-route \"r\"; }\n", taken.Addr())))
	clients := testutil.NewSteadyClients(t)
	for range 4 {
		clients.Add(answer, func(got string) bool { return strings.HasPrefix(got, "200 A") })
	}
	want := "listening on " + taken.Addr().String()
	for i := range 20 {
		if err := caddy.Load(cfgB, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load %d of config B: %v", i, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	clients.Check(t, "20 failed loads", 20)
	// Once the address is free, B loads and answers on both listeners.
	second := taken.Addr().String()
	taken.Close()
	if err := caddy.Load(cfgB, true); err != nil {
		t.Fatalf("config B once the address is free: %v", err)
	}
	if got := answer(); !strings.HasPrefix(got, "200 B") {
		t.Errorf("config B: %s", got)
	}
	res, err := http.Get("http://" + second + "/")
	if err != nil {
		t.Fatalf("config B's second listener: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("config B's second listener: %d", res.StatusCode)
	}
}
