package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// TestRetryGoesToAnotherTarget is issue 13 item 1: with a dead target of
// weight 2 beside a live one and `max-attempts 2`, every request is
// answered by the live target — the retry never returns to the target
// that just failed — with every load-balancing name the adapter accepts,
// and the access log counts the attempts.
func TestRetryGoesToAnotherTarget(t *testing.T) {
	live := startBackend(t, "live")
	dead := testutil.FreeAddr(t) // nothing listens: connection refused
	logFile := filepath.Join(t.TempDir(), "access.log")

	var names []string
	for _, n := range kdladapter.LoadBalancingNames() {
		if strings.Contains(n, "token") { // not available (the adapter says so)
			continue
		}
		names = append(names, n)
	}
	var routes, upstreams strings.Builder
	for i, n := range names {
		fmt.Fprintf(&routes, `
    route "r%[1]d" {
        matches { path-prefix "/p%[1]d/"; }
        upstream "u%[1]d"
        retry-policy { max-attempts 2; }
    }`, i)
		fmt.Fprintf(&upstreams, `
    upstream "u%d" {
        target "%s" weight=2
        target "%s"
        load-balancing %q
    }`, i, dead, live.addr, n)
	}
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "main" { address "%s"; }
}
observability {
    logging {
        access-log { file %q; }
    }
}
routes {%s
}
upstreams {%s
}
`, listen, logFile, routes.String(), upstreams.String()))

	c := client()
	for i, n := range names {
		var got []int
		for k := range 12 {
			status, body, _ := get(t, c, "GET", fmt.Sprintf("http://%s/p%d/%d", listen, i, k), nil)
			got = append(got, status)
			if status == http.StatusOK && !strings.HasPrefix(body, "live ") {
				t.Errorf("%s: body %q", n, body)
			}
		}
		for _, s := range got {
			if s != http.StatusOK {
				t.Errorf("load-balancing %q: statuses %v, want only 200", n, got)
				break
			}
		}
	}

	// The access log: one entry per request, with the attempts made.
	attempts := map[string]map[float64]int{}
	eventually(t, "access log entries", func() bool {
		attempts = map[string]map[float64]int{}
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		n := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			route, _ := e["route_id"].(string)
			a, _ := e["upstream_attempts"].(float64)
			if attempts[route] == nil {
				attempts[route] = map[float64]int{}
			}
			attempts[route][a]++
			n++
		}
		return n >= 12*len(names)
	})
	retried := 0
	for route, byCount := range attempts {
		for a := range byCount {
			if a != 1 && a != 2 {
				t.Errorf("route %s: upstream_attempts %v (%v)", route, a, byCount)
			}
		}
		retried += byCount[2]
	}
	if retried == 0 {
		t.Errorf("no entry with upstream_attempts 2: %v", attempts)
	}
}
