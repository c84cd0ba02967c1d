package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// countingCache is a TLS session cache that counts stored tickets.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int32
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

// earlyDataSeen makes a first HTTP/3 request to get a session ticket, then
// a GET in 0-RTT on a new connection, and returns what the backend saw in
// the Early-Data header of that request ("1" when it came as early data;
// reverse_proxy adds it, RFC 8470).
func earlyDataSeen(t *testing.T, url string) string {
	t.Helper()
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	cfg := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache} //nolint:gosec // test certificates

	first := &http3.Transport{TLSClientConfig: cfg}
	res, err := (&http.Client{Transport: first, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	eventually(t, "a session ticket", func() bool { return cache.puts.Load() > 0 })
	first.Close()

	second := &http3.Transport{TLSClientConfig: cfg}
	defer second.Close()
	req, err := http.NewRequest(http3.MethodGet0RTT, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err = second.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("0-RTT request: %d %q", res.StatusCode, body)
	}
	return string(body)
}

// zeroRTTBackend answers with the Early-Data header of the request.
func zeroRTTBackend(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "early-data=%s", r.Header.Get("Early-Data"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestHTTP3ZeroRTT: with `allow-0rtt #true` a resumed HTTP/3 connection
// may carry a GET as 0-RTT early data, which the upstream sees flagged with
// `Early-Data: 1`; without it (the default), 0-RTT is refused and the
// request waits for the handshake.
func TestHTTP3ZeroRTT(t *testing.T) {
	backend := zeroRTTBackend(t)
	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1")
	kdl := func(listen, extra string) string {
		return fmt.Sprintf(`
system { }
listeners {
    listener "h3" {
        address %q
        protocol "h3"
        %s
        tls { cert-file %q; key-file %q; }
    }
}
routes { route "all" { matches { path-prefix "/"; }; upstream "b"; }; }
upstreams { upstream "b" { target %q; }; }
`, listen, extra, cert, key, backend)
	}

	t.Run("opt-in", func(t *testing.T) {
		listen := testutil.FreeAddr(t)
		loadKDL(t, kdl(listen, "allow-0rtt #true"))
		// 0-RTT is opportunistic (a busy machine can let the handshake
		// finish first): one early request out of a few resumptions
		// proves the listener accepts early data.
		var got string
		for i := 0; i < 5 && got != "early-data=1"; i++ {
			got = earlyDataSeen(t, "https://"+listen+"/")
		}
		if got != "early-data=1" {
			t.Errorf("0-RTT request not served as early data in 5 resumptions: %q", got)
		}
	})

	t.Run("default is off", func(t *testing.T) {
		listen := testutil.FreeAddr(t)
		cfg, _, err := kdladapter.Adapt("0rtt.kdl", []byte(withAdmin(kdl(listen, ""))), os.LookupEnv, kdladapter.OSFiles{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cfg), `"allow_0rtt":false`) {
			// Caddy accepts 0-RTT when allow_0rtt is absent: the adapter
			// must say false on every TLS listener.
			t.Fatalf("the KDL adapter does not set allow_0rtt false by default: 0-RTT is on unless opted out:\n%s", cfg)
		}
		loadKDL(t, kdl(listen, ""))
		if got := earlyDataSeen(t, "https://"+listen+"/"); got != "early-data=" {
			t.Errorf("0-RTT accepted without allow-0rtt: %q", got)
		}
	})
}
