package accesslog

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2996

func newTester(t *testing.T) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

// caddyConfig returns a Caddy config whose server on 127.0.0.1:19150
// writes its access log to logFile with the encoder in the given style.
// Its route adds trace_id and route_id with log_append handlers, and
// answers 201 "hello" with the trace id in an X-Trace-Id header.
func caddyConfig(logFile, style string) string {
	filename, _ := json.Marshal(logFile)
	return fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"logging": {
			"logs": {
				"acc": {
					"writer": {"output": "file", "filename": %s},
					"encoder": {"format": "sentinel_access", "style": %q, "instance_id": "itest-1"},
					"include": ["http.log.access.acc"]
				}
			}
		},
		"apps": {
			"http": {
				"http_port": 19150,
				"https_port": 19151,
				"servers": {
					"acc": {
						"listen": ["127.0.0.1:19150"],
						"automatic_https": {"disable": true},
						"logs": {"default_logger_name": "acc"},
						"routes": [{
							"handle": [
								{"handler": "log_append", "key": "trace_id", "value": "{http.request.uuid}"},
								{"handler": "log_append", "key": "route_id", "value": "api"},
								{"handler": "log_append", "key": "upstream_addr", "value": "{http.reverse_proxy.upstream.hostport}"},
								{
									"handler": "static_response",
									"status_code": 201,
									"headers": {"X-Trace-Id": ["{http.request.uuid}"]},
									"body": "hello"
								}
							]
						}]
					}
				}
			}
		}
	}`, adminPort, filename, style)
}

// request sends GET /api/items?id=7&q=a%20b with a User-Agent and returns
// the trace id the server answered with.
func request(t *testing.T, tester *caddytest.Tester) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://127.0.0.1:19150/api/items?id=7&q=a%20b", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "sentinel-test/1.0")
	resp, _ := tester.AssertResponse(req, http.StatusCreated, "hello")
	traceID := resp.Header.Get("X-Trace-Id")
	if traceID == "" {
		t.Fatal("no X-Trace-Id in the response")
	}
	return traceID
}

// readLine waits for the first line of the log file and returns it.
func readLine(t *testing.T, logFile string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line in %s after 10s (content %q)", logFile, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCaddyAccessLog(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		logFile := filepath.Join(t.TempDir(), "access.log")
		tester := newTester(t)
		tester.InitServer(caddyConfig(logFile, StyleJSON), "json")
		traceID := request(t, tester)
		line := readLine(t, logFile)

		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		want := map[string]any{
			"trace_id":          traceID,
			"method":            "GET",
			"path":              "/api/items",
			"query":             "id=7&q=a%20b",
			"protocol":          "HTTP/1.1",
			"status":            float64(201),
			"body_bytes":        float64(5),
			"client_ip":         "127.0.0.1",
			"user_agent":        "sentinel-test/1.0",
			"host":              "127.0.0.1:19150",
			"route_id":          "api",
			"upstream_attempts": float64(0),
			"instance_id":       "itest-1",
			"body_bytes_sent":   float64(5),
			"connection_reused": false,
			"rate_limit_hit":    false,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
		// no referer, upstream or upstream address: left out
		for _, k := range []string{"referer", "upstream", "upstream_addr"} {
			if _, ok := got[k]; ok {
				t.Errorf("%s should be left out: %s", k, line)
			}
		}
		if d, ok := got["duration_ms"].(float64); !ok || d < 0 || d > 5000 {
			t.Errorf("duration_ms = %#v", got["duration_ms"])
		}
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["timestamp"]))
		if err != nil || time.Since(ts) > time.Minute || !strings.HasSuffix(got["timestamp"].(string), "+00:00") {
			t.Errorf("timestamp = %v (%v)", got["timestamp"], err)
		}
		// the keys are in the original's order
		order := []string{`"timestamp"`, `"trace_id"`, `"method"`, `"path"`, `"query"`, `"protocol"`,
			`"status"`, `"body_bytes"`, `"duration_ms"`, `"client_ip"`, `"user_agent"`, `"host"`,
			`"route_id"`, `"upstream_attempts"`, `"instance_id"`, `"body_bytes_sent"`,
			`"connection_reused"`, `"rate_limit_hit"`}
		last := -1
		for _, k := range order {
			i := strings.Index(line, k+":")
			if i <= last {
				t.Errorf("key %s out of order in %s", k, line)
			}
			last = i
		}
	})

	t.Run("combined", func(t *testing.T) {
		logFile := filepath.Join(t.TempDir(), "access.log")
		tester := newTester(t)
		tester.InitServer(caddyConfig(logFile, StyleCombined), "json")
		traceID := request(t, tester)
		line := readLine(t, logFile)

		re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] ` +
			`"GET /api/items\?id=7&q=a%20b HTTP/1\.1" 201 5 "-" "sentinel-test/1\.0" ` +
			regexp.QuoteMeta(traceID) + ` \d+ms$`)
		if !re.MatchString(line) {
			t.Errorf("line %q does not match %s", line, re)
		}
	})
}
