package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestDeferredLogKeepsProxyLines: with the sentinel_deferred encoder, the
// reverse proxy's own log lines are still written with the fields of its
// request-scoped logger (upstream, duration, the request object), encoded
// when the line is written: at debug level, the "upstream roundtrip" line
// of every request, through the real server and proxy.
func TestDeferredLogKeepsProxyLines(t *testing.T) {
	backend := startCannedBackend(t, 16)
	listen := testutil.FreeAddr(t)
	logFile := filepath.Join(t.TempDir(), "debug.log")
	cfg := fmt.Sprintf(`{
  "admin": {"listen": "localhost:2999"},
  "logging": {"logs": {"default": {
    "level": "DEBUG",
    "writer": {"output": "file", "filename": %q},
    "encoder": {"format": "sentinel_deferred", "wrap": {"format": "json"}},
    "include": ["http.handlers.reverse_proxy"]
  }}},
  "apps": {"http": {"servers": {"s": {
    "listen": [%q], "protocols": ["h1"], "automatic_https": {"disable": true},
    "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}]}]
  }}}}
}`, logFile, listen, backend)
	tester(t).InitServer(cfg, "json")
	c := client()
	for i := range 3 {
		if status, _, _ := get(t, c, "GET", fmt.Sprintf("http://%s/deferred/%d", listen, i), map[string]string{"X-Probe": "yes"}); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	seen := map[string]bool{}
	eventually(t, "the proxy's upstream roundtrip lines", func() bool {
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e struct {
				Msg      string  `json:"msg"`
				Upstream string  `json:"upstream"`
				Duration float64 `json:"duration"`
				Status   int     `json:"status"`
				Request  struct {
					URI     string              `json:"uri"`
					Headers map[string][]string `json:"headers"`
				} `json:"request"`
			}
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.Msg != "upstream roundtrip" {
				continue
			}
			if e.Upstream != backend || e.Duration <= 0 || e.Status != 200 || len(e.Request.Headers["X-Probe"]) != 1 {
				t.Fatalf("entry without the logger's fields: %s", sc.Bytes())
			}
			seen[e.Request.URI] = true
		}
		return len(seen) == 3
	})
}

// TestAdaptedLogKeepsProxyErrorLines: the default log the KDL adapter
// emits (sentinel_deferred around json) still has the proxy's error
// lines, through a Sentinel route (its handlers folded into
// sentinel_route): when the backend dies in the middle of a response, the
// reverse proxy's own "aborting with incomplete response" warning, with
// the fields of its request-scoped logger (upstream, the request); when
// the backend is gone, the server's error line of the 502 (connection
// refused), with the request (a debug line: Caddy logs an error that an
// error route answered at debug level, Sentinel's error route included).
func TestAdaptedLogKeepsProxyErrorLines(t *testing.T) {
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().String()
	// The backend answers the headers and part of the body, then dies.
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
			}()
		}
	}()
	listen := testutil.FreeAddr(t)
	logFile := filepath.Join(t.TempDir(), "sentinel.log")
	loadKDL(t, fmt.Sprintf(`system { }
listeners { listener "main" { address %q; }; }
observability { logging { level "debug"; file %q; }; }
routes { route "api" { matches { path-prefix "/"; }; upstream "u"; }; }
upstreams { upstream "u" { target %q; }; }
`, listen, logFile, backend))
	c := client()
	if res, err := c.Get("http://" + listen + "/cut?probe=1"); err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	ln.Close() // the backend is gone
	if status, _, _ := get(t, c, "GET", "http://"+listen+"/gone", nil); status != http.StatusBadGateway {
		t.Fatalf("status %d with the backend gone, want 502", status)
	}
	type entry struct {
		Level    string `json:"level"`
		Logger   string `json:"logger"`
		Msg      string `json:"msg"`
		Upstream string `json:"upstream"`
		Status   int    `json:"status"`
		Request  struct {
			URI string `json:"uri"`
		} `json:"request"`
	}
	var aborted, refused *entry
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("the log:\n%s", b)
		}
	})
	eventually(t, "the proxy's error lines in the log", func() bool {
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e entry
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			switch {
			case e.Logger == "http.handlers.reverse_proxy" && e.Msg == "aborting with incomplete response":
				aborted = &e
			case e.Logger == "http.log.error" && e.Request.URI == "/gone":
				refused = &e
			}
		}
		return aborted != nil && refused != nil
	})
	if aborted.Level != "warn" || aborted.Upstream != backend || aborted.Request.URI != "/cut?probe=1" {
		t.Errorf("the proxy's warning lacks its logger's fields: %+v", *aborted)
	}
	if refused.Level != "debug" || refused.Status != http.StatusBadGateway || !strings.Contains(refused.Msg, "connection refused") {
		t.Errorf("the 502's error line: %+v", *refused)
	}
}
