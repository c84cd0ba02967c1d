package integration

import (
	"fmt"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestForwardedIdentity is issue 13 item 3: a client's X-Real-IP and
// Forwarded do not reach the backend unless the peer is a trusted proxy
// (trusted-proxies on the listener); X-Forwarded-For is Caddy's.
func TestForwardedIdentity(t *testing.T) {
	be := startBackend(t, "be")
	untrusted, trusted := testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "untrusted" {
        address "%s"
        trusted-proxies "10.0.0.0/8" "192.0.2.7"
    }
    listener "trusted" {
        address "%s"
        trusted-proxies "127.0.0.0/8"
    }
}
routes {
    route "all" { upstream "be"; }
}
upstreams {
    upstream "be" { target "%s"; }
}
`, untrusted, trusted, be.addr))
	c := client()
	spoof := map[string]string{
		"X-Real-IP":       "203.0.113.9",
		"Forwarded":       "for=203.0.113.9;proto=https",
		"X-Forwarded-For": "203.0.113.9",
	}

	t.Run("untrusted peer", func(t *testing.T) {
		if st, _, _ := get(t, c, "GET", "http://"+untrusted+"/a", spoof); st != 200 {
			t.Fatalf("status %d", st)
		}
		h := be.lastHeader()
		if got := h.Values("X-Real-Ip"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("X-Real-IP %q, want the peer 127.0.0.1", got)
		}
		if got := h.Values("Forwarded"); len(got) != 0 {
			t.Errorf("Forwarded %q reached the backend", got)
		}
		if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want 127.0.0.1", got)
		}
		// Without the headers: X-Real-IP is still the peer.
		get(t, c, "GET", "http://"+untrusted+"/b", nil)
		if got := be.lastHeader().Get("X-Real-Ip"); got != "127.0.0.1" {
			t.Errorf("X-Real-IP %q without a client value", got)
		}
	})

	t.Run("trusted peer", func(t *testing.T) {
		if st, _, _ := get(t, c, "GET", "http://"+trusted+"/c", spoof); st != 200 {
			t.Fatalf("status %d", st)
		}
		h := be.lastHeader()
		if got := h.Get("X-Real-Ip"); got != "203.0.113.9" {
			t.Errorf("X-Real-IP %q, want the proxy's 203.0.113.9", got)
		}
		if got := h.Get("Forwarded"); got != "for=203.0.113.9;proto=https" {
			t.Errorf("Forwarded %q", got)
		}
		if got := h.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
			t.Errorf("X-Forwarded-For %q", got)
		}
		get(t, c, "GET", "http://"+trusted+"/d", map[string]string{"X-Forwarded-For": "198.51.100.4"})
		if got := be.lastHeader().Get("X-Real-Ip"); got != "198.51.100.4" {
			t.Errorf("X-Real-IP %q, want the client address the trusted proxy gave", got)
		}
	})
}
