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

// TestWebSocketSurvivesReload opens a WebSocket through the proxy, loads
// a changed config (a graceful reload, as every `/config` change and
// `sentinel reload` is) and checks that the upgraded connection still
// relays both ways: a reload must not cut the long-lived connections the
// old config proxied (README: in-flight requests finish on the old
// config). Caddy's reverse proxy closes every upgraded connection of a
// replaced config at once (WebSocket close 1001) unless its
// stream_close_delay is set: the KDL adapter sets it to the grace period
// (docs/control-plane.md).
func TestWebSocketSurvivesReload(t *testing.T) {
	be := startRawBackend(t)
	listen := testutil.FreeAddr(t)
	cfg := func(v string) string {
		return fmt.Sprintf(`
system { graceful-shutdown-timeout-secs 5; }
listeners { listener "main" { address %q; protocol "http"; }; }
routes {
    route "ws" {
        matches { path-prefix "/"; }
        upstream "be"
        policies { response-headers { set { "X-Config" %q; }; }; }
    }
}
upstreams { upstream "be" { target %q; }; }
`, listen, v, be.addr)
	}
	load := func(kdl string) { loadKDL(t, kdl) }
	load(cfg("1"))

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	echo := func(msg string) error {
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			return fmt.Errorf("echo of %q: %w (read %q)", msg, err, got)
		}
		if string(got) != msg {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}

	load(cfg("2"))
	eventually(t, "the new config", func() bool {
		_, _, hdr := get(t, client(), "GET", "http://"+listen+"/x", nil)
		return hdr.Get("X-Config") == "2"
	})
	if err := echo("after the reload"); err != nil {
		t.Fatalf("the WebSocket did not survive the reload: %v", err)
	}
}

// TestWebSocketThroughLimits opens a WebSocket through a route with a
// request body limit and a route timeout: the limit bounds request bodies
// only (a tunnel relays frames of any size, as docs/protocols.md says),
// and the route timeout covers the whole exchange, upgraded connections
// included (modules/timeout): the tunnel is closed when it elapses.
func TestWebSocketThroughLimits(t *testing.T) {
	be := startRawBackend(t)
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "main" { address %q; protocol "http"; }; }
routes {
    route "ws" {
        matches { path-prefix "/"; }
        upstream "be"
        policies { max-body-size 16; timeout-secs 2; }
    }
}
upstreams { upstream "be" { target %q; }; }
`, listen, be.addr))

	// the limit is in force for requests with a body
	req, _ := http.NewRequest("POST", "http://"+listen+"/up", strings.NewReader(strings.Repeat("x", 100)))
	res, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST of 100 bytes: %d, want 413", res.StatusCode)
	}

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	msg := strings.Repeat("y", 4096)
	io.WriteString(c, msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
		t.Fatalf("echo of 4 KiB through a 16-byte body limit: %v", err)
	}
	// the route timeout ends the tunnel
	_, err = io.ReadAll(br)
	if el := time.Since(start); err != nil || el < 1500*time.Millisecond || el > 5*time.Second {
		t.Fatalf("tunnel ended after %v (%v), want at the 2 s route timeout", el, err)
	}
}
