package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// startAgentProcess starts an example agent process until the test ends;
// its output is kept for assertions.
func startAgentProcess(t *testing.T, name string, args ...string) *testutil.Process {
	t.Helper()
	p := testutil.NewProcess(t, name, nil, append([]string{buildExampleAgent(t, name)}, args...)...)
	p.Start()
	return p
}

// TestAgentsImpersonationRefused (issue 12.6): a holder of the
// registration token registers with the id of the configured block-all
// WAF; it is refused with the reason, and every request is still
// blocked (before the fix, 7 of 20 passed). The example agents run as
// real processes.
func TestAgentsImpersonationRefused(t *testing.T) {
	be := startBackend(t, "be")
	wafSock, regSock := agentSock(t, "waf.sock"), agentSock(t, "reg.sock")
	startAgentProcess(t, "faulty", "-uds", wafSock, "-id", "waf", "-block-every", "1", "-status", "403")
	waitFile(t, wafSock)
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "waf" { unix-socket "%s"; failure-mode "closed"; pool { connections 1; } }
    registration { unix-socket "%s"; token "reg-token-123"; }`, wafSock, regSock), `
    filter "waf" { type "agent"; agent "waf"; }`, `
    route "r" { upstream "b"; filters "waf"; }`))
	c := client()
	base := "http://" + listen
	eventually(t, "the WAF blocking", func() bool {
		status, _, _ := get(t, c, "GET", base+"/", nil)
		return status == 403
	})
	// The impersonator: the registration token, the WAF's id, allows all.
	imp := startAgentProcess(t, "echo", "-register", regSock, "-token", "reg-token-123", "-id", "waf")
	exited, err := imp.Wait(10 * time.Second)
	if !exited {
		t.Fatal("the impersonator is still registered")
	}
	if err == nil {
		t.Fatal("the impersonator's registration did not fail")
	}
	if out := imp.Output(); !strings.Contains(out, `agent \"waf\" is a configured agent`) && !strings.Contains(out, `agent "waf" is a configured agent`) {
		t.Errorf("the impersonator was not told why:\n%s", out)
	}
	for i := 0; i < 20; i++ {
		if status, body, _ := get(t, c, "GET", base+"/", nil); status != 403 {
			t.Fatalf("request %d passed the block-all WAF: %d %s", i, status, body)
		}
	}
	if be.hits.Load() != 0 {
		t.Fatalf("the backend got %d requests", be.hits.Load())
	}
	// An in-process impersonator gets the typed error.
	err = sdk.Register(context.Background(), regSock, "reg-token-123", sdk.Base{}, sdk.Options{AgentID: "waf", HandshakeTimeout: 5 * time.Second})
	if !errors.Is(err, protocol.ErrRegistrationRefused) {
		t.Fatalf("sdk.Register: %v", err)
	}
}

// TestAgentsDenylistPathBypass (issue 13.2): the denylist example agent,
// as a process, blocking /api/secret, cannot be passed by another
// spelling of the path; the ambiguous encodings are refused with 400.
// The backend gets none of them.
func TestAgentsDenylistPathBypass(t *testing.T) {
	be := startBackend(t, "be")
	sock := agentSock(t, "deny.sock")
	startAgentProcess(t, "denylist", "-uds", sock, "-id", "denylist", "-path", "/api/secret")
	waitFile(t, sock)
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "deny" { unix-socket "%s"; failure-mode "closed"; }`, sock), `
    filter "deny" { type "agent"; agent "deny"; }`, `
    route "r" { upstream "b"; filters "deny"; }`))
	eventually(t, "the denylist agent", func() bool {
		status, _ := rawGet(t, listen, "/api/secret")
		return status == 403
	})
	for _, tc := range []struct {
		target string
		status int
	}{
		{"/api/secret", 403},
		{"/api/%73ecret", 403},
		{"/api//secret", 403},
		{"/api/./secret", 403},
		{"/api/x/../secret", 403},
		{"/api/secret/../secret?x=1", 403},
		{"/api/%2e/secret", 400},
		{"/api/%2E%2E/api/secret", 400},
		{"/api%2Fsecret", 400},
		{"/api/public", 200},
		{"/api/%70ublic", 200},
	} {
		before := be.hits.Load()
		status, body := rawGet(t, listen, tc.target)
		if status != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.target, status, body, tc.status)
		}
		if tc.status != 200 && be.hits.Load() != before {
			t.Errorf("%s reached the backend", tc.target)
		}
	}
}

// rawGet sends target as the request line, unchanged (net/http would
// clean some spellings) and returns the status and the body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestAgentsUnhealthyFaulty (issue 13.6): the faulty example agent
// reports itself unhealthy but still answers; it is treated as down —
// the fail-open route skips it, the fail-closed one answers 503 — until
// it reports healthy again.
func TestAgentsUnhealthyFaulty(t *testing.T) {
	be := startBackend(t, "be")
	sock := agentSock(t, "sick.sock")
	startAgentProcess(t, "faulty", "-uds", sock, "-id", "sick", "-unhealthy", "-healthy-after", "6s")
	waitFile(t, sock)
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "open" { unix-socket "%[1]s"; failure-mode "open"; pool { connections 1; } }
    agent "closed" { unix-socket "%[1]s"; failure-mode "closed"; pool { connections 1; } }`, sock), `
    filter "open" { type "agent"; agent "open"; }
    filter "closed" { type "agent"; agent "closed"; }`, `
    route "open" { matches { path-prefix "/open"; }; upstream "b"; filters "open"; }
    route "closed" { matches { path-prefix "/closed"; }; upstream "b"; filters "closed"; }`))
	c := client()
	base := "http://" + listen
	// A connection takes calls from its handshake until the agent's
	// health report, which follows on the same connection, and a pool
	// not connected yet answers as a down agent does: both routes must
	// show the agent down for ten checks in a row (half a second) before
	// the checks below (one check after the first 503 saw the fail-open
	// route's connection before its report).
	streak := 0
	eventually(t, "both routes treating the agent as down", func() bool {
		closed, _, _ := get(t, c, "GET", base+"/closed", nil)
		open, _, _ := get(t, c, "GET", base+"/open", nil)
		if closed == 503 && open == 200 && be.lastHeader().Get("X-Faulty-Agent") == "" {
			streak++
		} else {
			streak = 0
		}
		return streak >= 10
	})
	for i := 0; i < 5; i++ {
		if status, _, _ := get(t, c, "GET", base+"/open", nil); status != 200 || be.lastHeader().Get("X-Faulty-Agent") != "" {
			t.Fatalf("fail-open route: %d, agent header %q (the unhealthy agent was used)", status, be.lastHeader().Get("X-Faulty-Agent"))
		}
		if status, _, _ := get(t, c, "GET", base+"/closed", nil); status != 503 {
			t.Fatalf("fail-closed route: %d", status)
		}
	}
	// healthy again: used again
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _, _ := get(t, c, "GET", base+"/closed", nil)
		if status == 200 && be.lastHeader().Get("X-Faulty-Agent") == "sick" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovered agent is not used: %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
