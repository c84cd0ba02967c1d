package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestDeferredLogKeepsProxyLines: with the sentinel_deferred encoder, the
// reverse proxy's own log lines are still written with the fields of its
// request-scoped logger (upstream, duration, the request object), encoded
// when the line is written: at debug level, the "upstream roundtrip" line
// of every request, through the real server and proxy.
func TestDeferredLogKeepsProxyLines(t *testing.T) {
	backend := startCannedBackend(t, 16)
	listen := freeAddr(t)
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
