package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestConnectIsNotProxied sends HTTP/1.1 CONNECT requests (`CONNECT
// host:port`, asking for a tunnel) to a listener whose routes match every
// path, or a host. A reverse proxy route does not tunnel: the CONNECT must
// not reach the upstream (which would get `CONNECT example.com:443`, an
// authority the client chose) nor be answered 2xx, and the framing checks
// (modules/framing) must keep checking the connection after it — they
// stop after a 2xx to CONNECT, taking the connection for a tunnel, while
// Go's server goes on reading requests from it — so a later request with
// both Content-Length and Transfer-Encoding is still refused.
//
// The sentinel matcher (modules/routematch) matches a CONNECT to an
// authority only when the route lists the method CONNECT. A route with no
// conditions at all has no matcher: there the framing checks refuse an
// HTTP/1.x CONNECT (400, connection closed) before any route runs.
func TestConnectIsNotProxied(t *testing.T) {
	be := startRawBackend(t)
	listen := testutil.FreeAddr(t)
	cfg := func(routes string) string {
		return fmt.Sprintf(`
system { }
listeners { listener "main" { address %q; protocol "http"; }; }
routes { %s }
upstreams { upstream "be" { target %q; }; }
`, listen, routes, be.addr)
	}
	t.Run("routes with conditions", func(t *testing.T) {
		loadKDL(t, cfg(`route "all" { matches { path-prefix "/"; }; upstream "be"; }
    route "h" { priority "high"; matches { host "h.test"; }; upstream "be"; }`))
		for _, authority := range []string{"example.com:443", "h.test:443"} {
			t.Run(authority, func(t *testing.T) { checkConnect(t, be, listen, authority) })
		}
		// the routes still serve their requests
		if status, body, _ := get(t, client(), "GET", "http://"+listen+"/x", nil); status != 200 || body != "be /x" {
			t.Fatalf("GET /x: %d %q", status, body)
		}
	})
	t.Run("route without conditions", func(t *testing.T) {
		loadKDL(t, cfg(`route "all" { upstream "be"; }`))
		checkConnect(t, be, listen, "example.com:443")
	})
}

// checkConnect sends CONNECT authority and then a CL+TE request on the
// same connection, and checks that neither reaches the upstream and that
// the CONNECT is not answered 2xx.
func checkConnect(t *testing.T, be *rawBackend, listen, authority string) {
	t.Helper()
	be.reset()
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("no answer to CONNECT: %v", err)
	}
	t.Logf("CONNECT %s: %d", authority, res.StatusCode)
	if res.StatusCode/100 == 2 {
		t.Errorf("CONNECT answered %d", res.StatusCode)
	} else {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	// The connection, if still open, is checked like any other.
	io.WriteString(c, smuggleCLTE)
	if res, err := http.ReadResponse(br, nil); err == nil && res.StatusCode != http.StatusBadRequest {
		t.Errorf("CL+TE after a CONNECT: %d, want 400", res.StatusCode)
	}
	time.Sleep(50 * time.Millisecond)
	for _, got := range be.requests() {
		if strings.HasPrefix(got, "CONNECT") || strings.Contains(got, "/smuggle") {
			t.Errorf("the upstream got %q", got)
		}
	}
}
