package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// dripHeaders connects to addr, sends a request line and then one header
// line every interval, and returns how long the proxy kept the connection
// open (capped at limit) and whether it was closed.
func dripHeaders(t *testing.T, addr string, interval, limit time.Duration) (time.Duration, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		// The proxy closes (possibly after a 408 or nothing): a read
		// returns EOF or an error.
		io.Copy(io.Discard, c)
		close(closed)
	}()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: drip.test\r\n"); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start), true
		case <-tick.C:
			if time.Since(start) > limit {
				return time.Since(start), false
			}
			fmt.Fprintf(c, "X-Drip-%d: %s\r\n", i, strings.Repeat("a", 4))
		}
	}
}

// TestSlowHeadersAreCut is issue 13 item 2: a client that drips header
// lines is closed once the listener's header timeout has passed — 10 s by
// default, request-timeout-secs when shorter, header-timeout-secs when
// given — not after Caddy's default minute.
func TestSlowHeadersAreCut(t *testing.T) {
	testutil.Exclusive(t)
	be := startBackend(t, "be")
	short, explicit := testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "short" {
        address "%s"
        request-timeout-secs 2
    }
    listener "explicit" {
        address "%s"
        request-timeout-secs 30
        header-timeout-secs 1
    }
}
routes {
    route "all" { upstream "be"; }
}
upstreams {
    upstream "be" { target "%s"; }
}
`, short, explicit, be.addr))

	for _, tc := range []struct {
		name    string
		addr    string
		timeout time.Duration
	}{
		{"request-timeout-secs 2", short, 2 * time.Second},
		{"header-timeout-secs 1", explicit, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			took, closed := dripHeaders(t, tc.addr, 200*time.Millisecond, tc.timeout+3*time.Second)
			if !closed {
				t.Fatalf("connection still open after %v (header timeout %v)", took, tc.timeout)
			}
			if took < tc.timeout-100*time.Millisecond || took > tc.timeout+1500*time.Millisecond {
				t.Fatalf("closed after %v, want about %v", took, tc.timeout)
			}
		})
	}

	t.Run("partial header held", func(t *testing.T) {
		c, err := net.Dial("tcp", explicit)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 512))
		if err == nil {
			// Go answers nothing or a 408; then the connection closes.
			_, err = io.Copy(io.Discard, c)
		}
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Fatalf("partial header held for %v (%v)", took, err)
		}
	})

	t.Run("a normal request still works", func(t *testing.T) {
		c, err := net.Dial("tcp", short)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("got %q, %v", line, err)
		}
	})
}
