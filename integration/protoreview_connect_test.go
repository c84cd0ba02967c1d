package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestConnectIsNotProxied sends HTTP/1.1 CONNECT requests to a listener
// whose only route matches every path. A reverse proxy has no route for
// CONNECT: it must not reach the upstream (which would get `CONNECT
// example.com:443`, an authority the client chose), and the framing
// checks (modules/framing) must keep checking the connection after it:
// Go's server does not switch protocols after a 2xx to CONNECT (the proxy
// does not tunnel it), so a later request with both Content-Length and
// Transfer-Encoding must still be refused with 400.
//
// Known issue, reported to the lead: today the CONNECT reaches the
// upstream, whose 200 stops the framing checks, and the CL+TE request
// after it is served. Runs with SENTINEL_KNOWN_ISSUES=1.
func TestConnectIsNotProxied(t *testing.T) {
	if os.Getenv("SENTINEL_KNOWN_ISSUES") == "" {
		t.Skip("known issue: HTTP/1.1 CONNECT is proxied and ends the framing checks (set SENTINEL_KNOWN_ISSUES=1 to run)")
	}
	be := startRawBackend(t)
	listen := freeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "main" { address %q; protocol "http"; }; }
routes { route "all" { matches { path-prefix "/"; }; upstream "be"; }; }
upstreams { upstream "be" { target %q; }; }
`, listen, be.addr))

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("no answer to CONNECT: %v", err)
	}
	for _, got := range be.requests() {
		if strings.HasPrefix(got, "CONNECT") {
			t.Errorf("the upstream got %q (answer %d)", got, res.StatusCode)
		}
	}
	if res.StatusCode/100 != 2 {
		res.Body.Close()
	}
	// The connection, if still open, is checked like any other.
	io.WriteString(c, smuggleCLTE)
	if res, err := http.ReadResponse(br, nil); err == nil && res.StatusCode != http.StatusBadRequest {
		t.Errorf("CL+TE after a CONNECT: %d, want 400", res.StatusCode)
	}
	time.Sleep(50 * time.Millisecond)
	for _, got := range be.requests() {
		if strings.Contains(got, "/smuggle") {
			t.Errorf("the upstream got %q", got)
		}
	}
}
