package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

// ---------------------------------------------------------------- agents

// testAgent is an in-process agent (agents/sdk) whose decisions depend
// on the request: the X-Want header and the path.
type testAgent struct {
	sdk.Base
	name  string
	sleep time.Duration
}

func (a *testAgent) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	if a.sleep > 0 {
		time.Sleep(a.sleep)
	}
	want := ""
	if v := ev.Headers["x-want-"+a.name]; len(v) > 0 {
		want = v[0]
	}
	switch want {
	case "block":
		r := protocol.BlockResponse(403, "blocked by "+a.name)
		r.Decision.Headers = map[string]string{"X-Blocked-By": a.name}
		return r
	case "redirect":
		return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Redirect, URL: "https://login.example/?from=" + a.name, Status: 302}}
	case "challenge":
		return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Challenge, ChallengeType: "captcha", Params: map[string]string{"by": a.name}}}
	}
	return &protocol.Response{
		RequestHeaders:  []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-Agent-" + a.name, Value: "ok"}, {Op: protocol.HeaderRemove, Name: "X-Strip"}},
		ResponseHeaders: []protocol.HeaderOp{{Op: protocol.HeaderAdd, Name: "X-Seen-By", Value: a.name}, {Op: protocol.HeaderRemove, Name: "X-Backend"}},
	}
}

func (a *testAgent) OnRequestBody(_ context.Context, ev *protocol.RequestBodyChunk) *protocol.Response {
	if strings.Contains(string(ev.Data), "DROP TABLE") {
		return protocol.BlockResponse(403, "sqli")
	}
	return &protocol.Response{RequestBodyMutation: &protocol.BodyMutation{Data: []byte(strings.ReplaceAll(string(ev.Data), "password", "********"))}}
}

// agentSock returns a short socket path.
func agentSock(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// runUDSAgent serves h on a Unix socket until the test ends.
func runUDSAgent(t testing.TB, h sdk.Handler, events ...protocol.EventType) string {
	t.Helper()
	path := agentSock(t, "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.ServeUDS(ctx, path, h, sdk.Options{AgentID: "it", Events: events})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFile(t, path)
	return path
}

// runGRPCAgent serves h over gRPC until the test ends.
func runGRPCAgent(t testing.TB, h sdk.Handler) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.ServeGRPCListener(ctx, ln, h, sdk.Options{AgentID: "it-grpc"})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return addr
}

func waitFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// buildExampleAgent builds examples/agents/<name> once per test run.
func buildExampleAgent(t testing.TB, name string) string {
	t.Helper()
	return testutil.Build(t, "./examples/agents/"+name)
}

// ---------------------------------------------------------------- fault agent

// faultAgent is a raw UDS agent (Rust dialect) that misbehaves on
// request: the mode of connection n is modes[n] (the last one repeats):
// "ok" allows, "crash" closes the connection, "hang" never answers,
// "garbage" sends bytes that are no frame, "oversized" announces a
// 2 GiB frame.
type faultAgent struct {
	ln    net.Listener
	path  string
	modes []string
	mu    sync.Mutex
	conns int
	wg    sync.WaitGroup
	open  []net.Conn
}

func startFaultAgent(t testing.TB, modes ...string) *faultAgent {
	t.Helper()
	path := agentSock(t, "fault.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultAgent{ln: ln, path: path, modes: modes}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.stop)
	return f
}

func (f *faultAgent) stop() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.open {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *faultAgent) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		mode := f.modes[min(f.conns, len(f.modes)-1)]
		f.conns++
		f.open = append(f.open, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			f.serve(c, mode)
		}()
	}
}

func (f *faultAgent) serve(c net.Conn, mode string) {
	hs, err := protocol.ReadFrame(c, protocol.DialectRust)
	if err != nil || hs.Type != protocol.MsgHandshakeRequest {
		return
	}
	resp := `{"protocol_version":2,"success":true,"error":null,"encoding":"json","capabilities":{"agent_id":"fault","name":"fault","version":"1","supported_events":[1],` +
		`"features":{"streaming_body":false,"websocket":false,"guardrails":false,"config_push":false,"metrics_export":false,"concurrent_requests":100,"cancellation":true,"flow_control":false,"health_reporting":false},` +
		`"limits":{"max_body_size":1048576,"max_concurrency":100,"preferred_chunk_size":65536}}}`
	if err := protocol.WriteFrame(c, protocol.MsgHandshakeResponse, []byte(resp)); err != nil {
		return
	}
	for {
		fr, err := protocol.ReadFrame(c, protocol.DialectRust)
		if err != nil {
			return
		}
		switch fr.Type {
		case protocol.MsgPing:
			_ = protocol.WriteFrame(c, protocol.MsgPong, fr.Payload)
			continue
		case protocol.MsgCancel:
			continue
		}
		var ev struct {
			CorrelationID string `json:"correlation_id"`
		}
		_ = json.Unmarshal(fr.Payload, &ev)
		switch mode {
		case "crash":
			return
		case "hang":
			continue
		case "garbage":
			_, _ = c.Write([]byte("\x00\x00\x00\x05\xEEnot a frame at all \xff\xfe"))
			continue
		case "oversized":
			var hdr [5]byte
			binary.BigEndian.PutUint32(hdr[:4], 0x7fffffff)
			hdr[4] = byte(protocol.MsgAgentResponse)
			_, _ = c.Write(hdr[:])
			continue
		}
		out := fmt.Sprintf(`{"version":2,"decision":"allow","response_headers":[{"set":{"name":"X-Fault-Agent","value":"ok"}}],"audit":{"custom":{"correlation_id":%q}}}`, ev.CorrelationID)
		if err := protocol.WriteFrame(c, protocol.MsgAgentResponse, []byte(out)); err != nil {
			return
		}
	}
}

// ---------------------------------------------------------------- config

// agentsKDL is a config with one listener, the backend and the given
// agents, filters and routes blocks.
func agentsKDL(listen, backend, agents, filters, routes string) string {
	return fmt.Sprintf(`system { }
listeners { listener "main" { address "%s"; } }
upstreams { upstream "b" { target "%s"; } }
agents {
%s
}
filters {
%s
}
routes {
%s
}
`, listen, backend, agents, filters, routes)
}

// apiAgents reads GET /api/v1/agents.
func apiAgents(t *testing.T, base, token string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("agents list: %d %s", res.StatusCode, raw)
	}
	return out
}

// ---------------------------------------------------------------- tests

// TestAgentsDecisions: a KDL config with a UDS agent and a gRPC agent
// on one route; every decision type, header operations in both
// directions, request body mutation and blocking, end to end.
func TestAgentsDecisions(t *testing.T) {
	be := startBackend(t, "be")
	udsPath := runUDSAgent(t, &testAgent{name: "uds"}, protocol.EventRequestHeaders, protocol.EventRequestBodyChunk)
	grpcAddr := runGRPCAgent(t, &testAgent{name: "grpc"})
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "uds" { unix-socket "%s"; events "request_headers" "request_body"; failure-mode "closed"; pool { connections 2; } }
    agent "grpc" { grpc "http://%s"; failure-mode "closed"; timeout-ms 2000; }`, udsPath, grpcAddr), `
    filter "uds" { type "agent"; agent "uds"; }
    filter "grpc" { type "agent"; agent "grpc"; }`, `
    route "all" { upstream "b"; filters "uds" "grpc"; }`))
	c := client()
	base := "http://" + listen

	status, body, hdr := get(t, c, "GET", base+"/x", map[string]string{"X-Strip": "1"})
	if status != 200 || !strings.HasPrefix(body, "be /x") {
		t.Fatalf("allow: %d %q", status, body)
	}
	if got := strings.Join(hdr.Values("X-Seen-By"), ","); got != "uds,grpc" || hdr.Get("X-Backend") != "" {
		t.Errorf("response header ops: X-Seen-By=%q X-Backend=%q", got, hdr.Get("X-Backend"))
	}
	bh := be.lastHeader()
	if bh.Get("X-Agent-uds") != "ok" || bh.Get("X-Agent-grpc") != "ok" || bh.Get("X-Strip") != "" {
		t.Errorf("request header ops at the backend: %v", bh)
	}
	for _, who := range []string{"uds", "grpc"} {
		status, body, hdr = get(t, c, "GET", base+"/x", map[string]string{"X-Want-" + who: "block"})
		if status != 403 || body != "blocked by "+who || hdr.Get("X-Blocked-By") != who {
			t.Errorf("%s block: %d %q %v", who, status, body, hdr)
		}
		status, _, hdr = get(t, c, "GET", base+"/x", map[string]string{"X-Want-" + who: "redirect"})
		if status != 302 || hdr.Get("Location") != "https://login.example/?from="+who {
			t.Errorf("%s redirect: %d %v", who, status, hdr)
		}
		status, body, _ = get(t, c, "GET", base+"/x", map[string]string{"X-Want-" + who: "challenge"})
		if status != 403 || !strings.Contains(body, `"challenge":"captcha"`) || !strings.Contains(body, `"by":"`+who+`"`) {
			t.Errorf("%s challenge: %d %q", who, status, body)
		}
	}
	// Both block: the first filter (uds) wins.
	status, body, _ = get(t, c, "GET", base+"/x", map[string]string{"X-Want-uds": "block", "X-Want-grpc": "block"})
	if status != 403 || body != "blocked by uds" {
		t.Errorf("first non-allow in filter order: %d %q", status, body)
	}
	// Request body: mutated (buffer mode) and blocked.
	res, err := c.Post(base+"/form", "text/plain", strings.NewReader("user=a&password=b"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("body post: %d", res.StatusCode)
	}
	res, err = c.Post(base+"/form", "text/plain", strings.NewReader("q=1; DROP TABLE users"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 403 || string(b) != "sqli" {
		t.Errorf("body block: %d %q", res.StatusCode, b)
	}
}

// TestAgentsParallelFanOut: two agents that each take 200 ms cost about
// 200 ms together, not 400.
func TestAgentsParallelFanOut(t *testing.T) {
	testutil.Exclusive(t)
	be := startBackend(t, "be")
	a := runUDSAgent(t, &testAgent{name: "a", sleep: 200 * time.Millisecond})
	b := runUDSAgent(t, &testAgent{name: "b", sleep: 200 * time.Millisecond})
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "a" { unix-socket "%s"; timeout-ms 5000; }
    agent "b" { unix-socket "%s"; timeout-ms 5000; }`, a, b), `
    filter "a" { type "agent"; agent "a"; }
    filter "b" { type "agent"; agent "b"; }`, `
    route "r" { upstream "b"; filters "a" "b"; }`))
	c := client()
	best := time.Hour
	for i := 0; i < 5; i++ {
		start := time.Now()
		status, _, hdr := get(t, c, "GET", "http://"+listen+"/", nil)
		d := time.Since(start)
		if status != 200 || len(hdr.Values("X-Seen-By")) != 2 {
			t.Fatalf("status %d, X-Seen-By %v", status, hdr.Values("X-Seen-By"))
		}
		best = min(best, d)
	}
	t.Logf("two 200 ms agents: best of 5 = %v", best)
	if best >= 390*time.Millisecond {
		t.Fatalf("fan-out is not parallel: best request took %v (two 200 ms agents)", best)
	}
}

// TestAgentsFaults: agents that crash mid-request, hang, send garbage or
// oversized frames; the proxy keeps serving, each failure mode answers
// as documented, and a crashed agent is reconnected.
func TestAgentsFaults(t *testing.T) {
	be := startBackend(t, "be")
	listen := testutil.FreeAddr(t)
	pool := `pool { connections 1; reconnect-backoff-ms 20; max-reconnect-backoff-ms 100; health-check-interval-ms 60000; }`
	var agents, filters, routes strings.Builder
	// One fault agent per route: its first connection misbehaves, the
	// next ones (after a reconnect) answer.
	for _, x := range []struct {
		id    string
		modes []string
	}{{"crash", []string{"crash", "ok"}}, {"hang", []string{"hang"}}, {"garbage", []string{"garbage", "ok"}}, {"huge", []string{"oversized", "ok"}}} {
		for _, mode := range []string{"open", "closed"} {
			id := x.id + "-" + mode
			f := startFaultAgent(t, x.modes...)
			fmt.Fprintf(&agents, "    agent %q { unix-socket %q; timeout-ms 300; failure-mode %q; %s }\n", id, f.path, mode, pool)
			fmt.Fprintf(&filters, "    filter %q { type \"agent\"; agent %q; }\n", id, id)
			fmt.Fprintf(&routes, "    route %q { matches { path-prefix \"/%s\"; }; upstream \"b\"; filters %q; }\n", id, id, id)
		}
	}
	loadKDL(t, agentsKDL(listen, be.addr, agents.String(), filters.String(), routes.String()))
	c := client()
	base := "http://" + listen
	// Closed: crash/garbage/oversized kill the connection → 503 (or 504
	// if the death is noticed only at the timeout); hang → 504.
	for _, x := range []struct {
		id   string
		want []int
	}{{"crash", []int{503}}, {"garbage", []int{503, 504}}, {"huge", []int{503, 504}}, {"hang", []int{504}}} {
		status, body, hdr := get(t, c, "GET", base+"/"+x.id+"-closed/", nil)
		ok := false
		for _, w := range x.want {
			ok = ok || status == w
		}
		if !ok {
			t.Errorf("%s fail-closed: %d, want %v", x.id, status, x.want)
		}
		// The failure goes through the listener's error route: JSON
		// naming the status, never the agent's error.
		want := map[int]string{503: `{"error":"Service unavailable","status":503,`, 504: `{"error":"Gateway timeout","status":504,`}[status]
		if !strings.HasPrefix(body, want) || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s fail-closed body: %v %q", x.id, hdr, body)
		}
	}
	// Open: the agent is skipped, the backend answers.
	for _, id := range []string{"crash", "hang", "garbage", "huge"} {
		status, body, _ := get(t, c, "GET", base+"/"+id+"-open/", nil)
		if status != 200 || !strings.HasPrefix(body, "be ") {
			t.Errorf("%s fail-open: %d %q", id, status, body)
		}
	}
	// Crashed / garbage / oversized agents come back on a new connection.
	for _, id := range []string{"crash-closed", "garbage-closed", "huge-closed"} {
		eventually(t, id+" reconnected", func() bool {
			status, _, hdr := get(t, c, "GET", base+"/"+id+"/", nil)
			return status == 200 && hdr.Get("X-Fault-Agent") == "ok"
		})
	}
}

// TestAgentsHungAgentIsolation: a hung agent on one route does not slow
// a route that uses only a healthy agent, even with the hung agent's
// queue full.
func TestAgentsHungAgentIsolation(t *testing.T) {
	testutil.Exclusive(t)
	be := startBackend(t, "be")
	hang := startFaultAgent(t, "hang")
	healthy := runUDSAgent(t, &testAgent{name: "ok"})
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "hung" { unix-socket "%s"; timeout-ms 3000; failure-mode "closed"; max-concurrent-calls 4; pool { queue-depth 4; connections 1; health-check-interval-ms 60000; } }
    agent "ok" { unix-socket "%s"; timeout-ms 3000; failure-mode "closed"; }`, hang.path, healthy), `
    filter "hung" { type "agent"; agent "hung"; }
    filter "ok" { type "agent"; agent "ok"; }`, `
    route "slow" { matches { path-prefix "/slow"; }; upstream "b"; filters "hung"; }
    route "fast" { matches { path-prefix "/fast"; }; upstream "b"; filters "ok"; }`))
	base := "http://" + listen
	// Saturate the hung agent: 4 in flight, 4 queued, the rest fail fast.
	var wg sync.WaitGroup
	slow := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client().Get(base + "/slow")
			if err != nil {
				slow <- 0
				return
			}
			res.Body.Close()
			slow <- res.StatusCode
		}()
	}
	time.Sleep(300 * time.Millisecond)
	c := client()
	var lat []time.Duration
	for i := 0; i < 30; i++ {
		start := time.Now()
		status, _, hdr := get(t, c, "GET", base+"/fast", nil)
		lat = append(lat, time.Since(start))
		if status != 200 || hdr.Get("X-Seen-By") != "ok" {
			t.Fatalf("healthy route: %d", status)
		}
	}
	wg.Wait()
	close(slow)
	counts := map[int]int{}
	for s := range slow {
		counts[s]++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("healthy route while the other agent hangs: p50 %v, max %v; hung route statuses %v", lat[len(lat)/2], lat[len(lat)-1], counts)
	if lat[len(lat)/2] > 500*time.Millisecond {
		t.Errorf("healthy route slowed down: p50 %v", lat[len(lat)/2])
	}
	if counts[504] < 1 || counts[503] < 1 {
		t.Errorf("hung route: want timeouts (504) and queue-full failures (503), got %v", counts)
	}
}

// TestAgentsLiveRegistration: an agent registers over the UDS listener
// with a token (a wrong token is refused), serves the route that names
// it, and is listed by /api/v1/agents.
func TestAgentsLiveRegistration(t *testing.T) {
	be := startBackend(t, "be")
	regSock := agentSock(t, "reg.sock")
	listen, apiAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	udsPath := runUDSAgent(t, &testAgent{name: "cfg"})
	kdl := agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "cfg" { unix-socket "%s"; }
    registration { unix-socket "%s"; token "s3cret"; defaults { failure-mode "closed"; timeout-ms 2000; } }`, udsPath, regSock), `
    filter "bot" { type "agent"; agent "bot"; }
    filter "cfg" { type "agent"; agent "cfg"; }`, `
    route "r" { upstream "b"; filters "cfg" "bot"; }`) + fmt.Sprintf(`
admin-api { address "%s"; auth { token "tok"; } }
`, apiAddr)
	loadKDL(t, kdl)
	c := client()
	base := "http://" + listen
	if status, _, _ := get(t, c, "GET", base+"/", nil); status != 200 {
		t.Fatalf("before registration (unknown agent, fail-open): %d", status)
	}
	if err := sdk.Register(context.Background(), regSock, "wrong", &testAgent{name: "bot"}, sdk.Options{AgentID: "bot", HandshakeTimeout: 5 * time.Second}); err == nil {
		t.Fatal("wrong token accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.Register(ctx, regSock, "s3cret", &testAgent{name: "bot"}, sdk.Options{AgentID: "bot"})
	}()
	defer func() { cancel(); <-done }()
	eventually(t, "live agent serving", func() bool {
		status, body, _ := get(t, c, "GET", base+"/", map[string]string{"X-Want-bot": "block"})
		return status == 403 && body == "blocked by bot"
	})
	list := apiAgents(t, "http://"+apiAddr, "tok")
	ids := map[string]map[string]any{}
	for _, a := range list {
		ids[a["id"].(string)] = a
	}
	if ids["bot"]["source"] != "live" || ids["bot"]["connected"] != true || ids["cfg"]["source"] != "config" || ids["cfg"]["dialect"] != "rust" {
		t.Fatalf("/api/v1/agents: %v", list)
	}
	req, _ := http.NewRequest("GET", "http://"+apiAddr+"/api/v1/agents/bot/status", nil)
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status of bot: %d", res.StatusCode)
	}
	// Disconnected: removed again.
	cancel()
	<-done
	eventually(t, "live agent removed", func() bool {
		for _, a := range apiAgents(t, "http://"+apiAddr, "tok") {
			if a["id"] == "bot" {
				return false
			}
		}
		return true
	})
}

// TestAgentsBodyModesAndLimits: stream and hybrid bodies through an
// agent, the 413 of a fail-closed agent over its limit, and a body that
// streams untouched when no agent wants it.
func TestAgentsBodyModesAndLimits(t *testing.T) {
	be := startBodyBackend(t)
	ag := runUDSAgent(t, &testAgent{name: "b"}, protocol.EventRequestHeaders, protocol.EventRequestBodyChunk)
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be, fmt.Sprintf(`
    agent "stream" { unix-socket "%[1]s"; events "request_body"; request-body-mode "stream"; chunk-size-bytes 4096; max-request-body-bytes 1048576; }
    agent "hybrid" { unix-socket "%[1]s"; events "request_body"; request-body-mode "hybrid:1024"; }
    agent "small" { unix-socket "%[1]s"; events "request_body"; max-request-body-bytes 100; failure-mode "closed"; }
    agent "headers" { unix-socket "%[1]s"; }`, ag), `
    filter "stream" { type "agent"; agent "stream"; }
    filter "hybrid" { type "agent"; agent "hybrid"; }
    filter "small" { type "agent"; agent "small"; }
    filter "headers" { type "agent"; agent "headers"; }`, `
    route "stream" { matches { path-prefix "/stream"; }; upstream "b"; filters "stream"; }
    route "hybrid" { matches { path-prefix "/hybrid"; }; upstream "b"; filters "hybrid"; }
    route "small" { matches { path-prefix "/small"; }; upstream "b"; filters "small"; }
    route "headers" { matches { path-prefix "/headers"; }; upstream "b"; filters "headers"; }`))
	base := "http://" + listen
	post := func(path, body string) (int, string) {
		res, err := client().Post(base+path, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	long := strings.Repeat("abcdefgh", 2000) + " password " + strings.Repeat("z", 3000)
	for _, p := range []string{"/stream", "/hybrid"} {
		status, body := post(p, long)
		if status != 200 || strings.Contains(body, "password") || len(body) != len(long) {
			t.Errorf("%s mutation: %d len %d", p, status, len(body))
		}
		if status, body := post(p, "x DROP TABLE y"); status != 403 || body != "sqli" {
			t.Errorf("%s block: %d %q", p, status, body)
		}
	}
	if status, body := post("/small", strings.Repeat("x", 500)); status != 413 || !strings.HasPrefix(body, `{"error":"Payload too large","status":413,`) {
		t.Errorf("over the limit, fail-closed: %d %q", status, body)
	}
	if status, body := post("/headers", long); status != 200 || body != long {
		t.Errorf("no body agent: %d len %d", status, len(body))
	}
}

// startBodyBackend echoes request bodies.
func startBodyBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestAgentsExampleProcesses: the echo example agent as real processes
// over UDS and gRPC: its config block reaches it, both directions of
// header operations apply, and when the UDS process dies the fail-closed
// route answers 503 while the proxy keeps serving the gRPC one; a
// restarted process is used again.
func TestAgentsExampleProcesses(t *testing.T) {
	sock := agentSock(t, "echo.sock")
	udsProc := startAgentProcess(t, "echo", "-uds", sock)
	waitFile(t, sock)
	grpcAddr := testutil.FreeAddr(t)
	startAgentProcess(t, "echo", "-grpc", grpcAddr, "-name", "echo-grpc")
	eventually(t, "the gRPC agent listening", func() bool {
		conn, err := net.DialTimeout("tcp", grpcAddr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	be := startBackend(t, "be")
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, be.addr, fmt.Sprintf(`
    agent "echo" { unix-socket "%s"; events "request_headers" "response_headers"; failure-mode "closed"; config { name "from-kdl"; }; pool { connections 1; reconnect-backoff-ms 50; max-reconnect-backoff-ms 200; } }
    agent "echo-grpc" { grpc "http://%s"; events "request_headers" "response_headers"; failure-mode "closed"; timeout-ms 3000; pool { reconnect-backoff-ms 50; max-reconnect-backoff-ms 200; } }`, sock, grpcAddr),
		`    filter "echo" { type "agent"; agent "echo"; }
    filter "echo-grpc" { type "agent"; agent "echo-grpc"; }`,
		`    route "uds" { matches { path-prefix "/uds"; }; upstream "b"; filters "echo"; }
    route "grpc" { matches { path-prefix "/grpc"; }; upstream "b"; filters "echo-grpc"; }`))
	c := client()
	base := "http://" + listen
	var s1, s2 int
	var h1, h2 http.Header
	ok := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(50 * time.Millisecond) {
		s1, _, h1 = get(t, c, "GET", base+"/uds", nil)
		s2, _, h2 = get(t, c, "GET", base+"/grpc", nil)
		ok = s1 == 200 && h1.Get("X-Echo-Agent-Response") == "from-kdl" && s2 == 200 && h2.Get("X-Echo-Agent-Response") == "echo-grpc"
	}
	if !ok {
		t.Fatalf("echo agents: uds %d %v, grpc %d %v", s1, h1, s2, h2)
	}
	get(t, c, "GET", base+"/uds", nil)
	if got := be.lastHeader().Get("X-Echo-Agent"); got != "from-kdl" {
		t.Fatalf("request header from the UDS process (config delivered): %q", got)
	}
	// The UDS agent dies: 503 there, the gRPC route keeps working.
	udsProc.Kill()
	eventually(t, "503 after the agent died", func() bool {
		status, _, _ := get(t, c, "GET", base+"/uds", nil)
		return status == 503
	})
	if status, _, hdr := get(t, c, "GET", base+"/grpc", nil); status != 200 || hdr.Get("X-Echo-Agent-Response") != "echo-grpc" {
		t.Fatalf("gRPC route while the UDS agent is down: %d", status)
	}
	// It comes back: the pool reconnects.
	udsProc.Start()
	eventually(t, "reconnected to the restarted agent", func() bool {
		status, _, hdr := get(t, c, "GET", base+"/uds", nil)
		return status == 200 && hdr.Get("X-Echo-Agent-Response") == "from-kdl"
	})
}

// TestAgentsCorpusCORSHeaders runs the original's examples/cors-headers.kdl
// unchanged but for its addresses: its private route goes through the
// gRPC "auth" agent (fail-closed), the public one does not.
func TestAgentsCorpusCORSHeaders(t *testing.T) {
	kdl := corpusFile(t, "examples/cors-headers.kdl")
	be := startBackend(t, "be")
	auth := runGRPCAgent(t, &testAgent{name: "auth"})
	listen, metrics := testutil.FreeAddr(t), testutil.FreeAddr(t)
	kdl = strings.NewReplacer(`"0.0.0.0:8080"`, `"`+listen+`"`, `"0.0.0.0:9090"`, `"`+metrics+`"`,
		`"http://localhost:50051"`, `"http://`+auth+`"`, `"localhost:3000"`, `"`+be.addr+`"`).Replace(kdl)
	loadKDL(t, kdl)
	c := client()
	base := "http://" + listen
	status, _, hdr := get(t, c, "GET", base+"/api/private/x", map[string]string{"Origin": "https://app.example"})
	if status != 200 || hdr.Get("X-Seen-By") != "auth" || be.lastHeader().Get("X-Agent-auth") != "ok" {
		t.Fatalf("private route through the agent: %d %v", status, hdr)
	}
	status, body, _ := get(t, c, "GET", base+"/api/private/x", map[string]string{"X-Want-auth": "block"})
	if status != 403 || body != "blocked by auth" {
		t.Fatalf("agent block: %d %q", status, body)
	}
	status, _, hdr = get(t, c, "GET", base+"/api/public/x", map[string]string{"X-Want-auth": "block"})
	if status != 200 || hdr.Get("X-Seen-By") != "" {
		t.Fatalf("public route (no agent): %d %v", status, hdr)
	}
}

// TestAgentsBodyStreamsWithoutBodyAgent: on a route whose agents do not
// want the body, the upstream reads the body while the client is still
// sending it (nothing buffers it).
func TestAgentsBodyStreamsWithoutBodyAgent(t *testing.T) {
	gotFirst := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		close(gotFirst)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", buf, rest)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ag := runUDSAgent(t, &testAgent{name: "h"})
	listen := testutil.FreeAddr(t)
	loadKDL(t, agentsKDL(listen, ln.Addr().String(), fmt.Sprintf(`    agent "h" { unix-socket "%s"; failure-mode "closed"; }`, ag),
		`    filter "h" { type "agent"; agent "h"; }`, `    route "r" { upstream "b"; filters "h"; }`))
	pr, pw := io.Pipe()
	res := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+listen+"/up", pr)
		r, err := client().Do(req)
		if err != nil {
			res <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		res <- string(b)
	}()
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gotFirst:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream did not get the first bytes before the body ended: the body was buffered")
	}
	pw.Write([]byte(" world"))
	pw.Close()
	if got := <-res; got != "hello world" {
		t.Fatalf("response %q", got)
	}
}

// TestAgentsOverHTTP3: a request that arrives over HTTP/3 goes through the
// route's agent like any other: the agent's request header reaches the
// backend, its response header the client, and its block answers the
// HTTP/3 client.
func TestAgentsOverHTTP3(t *testing.T) {
	backend := startBackend(t, "h3-agent")
	sock := runUDSAgent(t, &testAgent{name: "a"})
	listen := testutil.FreeAddr(t)
	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1")
	loadKDL(t, fmt.Sprintf(`system { }
listeners { listener "h3" { address %q; protocol "h3"; tls { cert-file %q; key-file %q; }; }; }
upstreams { upstream "b" { target %q; } }
agents { agent "a" { unix-socket %q; timeout-ms 5000; } }
filters { filter "a" { type "agent"; agent "a"; } }
routes { route "r" { matches { path-prefix "/"; }; upstream "b"; filters "a"; } }
`, listen, cert, key, backend.addr, sock))
	c := h3Client(t)
	get := func(want string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+listen+"/h3", nil)
		if want != "" {
			req.Header.Set("X-Want-a", want)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.ProtoMajor != 3 {
			t.Fatalf("protocol %s, want HTTP/3", res.Proto)
		}
		return res
	}
	if res := get(""); res.StatusCode != 200 || res.Header.Get("X-Seen-By") != "a" {
		t.Fatalf("allowed: %d, X-Seen-By %q", res.StatusCode, res.Header.Get("X-Seen-By"))
	}
	backend.mu.Lock()
	seen := backend.last.Get("X-Agent-a")
	backend.mu.Unlock()
	if seen != "ok" {
		t.Errorf("the backend did not get the agent's header: %q", seen)
	}
	if res := get("block"); res.StatusCode != 403 || res.Header.Get("X-Blocked-By") != "a" {
		t.Fatalf("blocked: %d, X-Blocked-By %q", res.StatusCode, res.Header.Get("X-Blocked-By"))
	}
}
