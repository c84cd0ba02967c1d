package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sentinel-proxy/sentinel/internal/logring"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
)

// uiConfig is the config of the admin UI test: a slow upstream (to watch
// a drain with a request in flight), a fast one, and tokens of the three
// scopes, and an agent on route web (it blocks a request with the header
// x-want-waf: block).
const uiConfig = `
system { caddy-admin "localhost:%d"; }
observability { logging { access-log { enabled #true; file "%s"; }; audit-log { file "%s"; spool-dir "%s"; }; }; }
listeners { listener "main" { address "%s"; }; }
agents { agent "waf" { unix-socket "%s"; timeout-ms 2000; }; }
filters { filter "waf" { type "agent"; agent "waf"; }; }
routes {
    route "api" {
        priority "high"
        matches { path-prefix "/api"; }
        upstream "slow"
    }
    route "web" {
        priority "low"
        matches { path-prefix "/"; }
        upstream "web"
        filters "waf"
    }
}
upstreams {
    upstream "slow" { target "%s"; target "%s"; }
    upstream "web" { target "%s"; }
}
admin-api {
    address "%s"
    auth {
        token "admin-secret" name="root"
        token "operate-secret" scope="operate" name="deploy"
        token "read-secret" scope="read" name="grafana"
    }
    allowed-target-networks "127.0.0.0/8"
    config-editor #true
}
`

// TestAdminUI drives the admin UI in a real browser (Debian's chromium,
// headless) through the real proxy: login, a read-only view without
// mutating controls, a drain watched from draining to drained with its
// in-flight count, a route switched off (the proxy answers 503), and a
// config with an error shown at its line, and an edited route applied
// from the editor (the proxy then serves the new config). With SENTINEL_UI_SCREENSHOTS=1
// it saves a screenshot of each page into docs/ui/.
func TestAdminUI(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		testutil.Missing(t, "chromium is not installed (apt-get install chromium): the admin UI browser test needs it")
	}
	// The editor's texts are validated in a child process: this test
	// binary cannot be it.
	t.Setenv(sentinelapp.ValidatorEnv, testutil.Build(t, "./cmd/sentinel"))
	slow1, slow2, web := startSlow(t, 3*time.Second), startSlow(t, 3*time.Second), startBackend(t, "web")
	listen, apiAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	agent := runUDSAgent(t, &testAgent{name: "waf"})
	file := filepath.Join(t.TempDir(), "sentinel.kdl")
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	kdl := fmt.Sprintf(uiConfig, adminPort, filepath.Join(t.TempDir(), "access.log"), auditFile, t.TempDir(), listen, agent, slow1.addr, slow2.addr, web.addr, apiAddr)
	unloadOnCleanup(t) // the audit app writes into the temporary folders until stopped
	if err := os.WriteFile(file, []byte(kdl), 0o644); err != nil {
		t.Fatal(err)
	}
	loadFile(t, file)
	base, proxy := "http://"+apiAddr, "http://"+listen
	shots := os.Getenv("SENTINEL_UI_SCREENSHOTS") == "1"

	// The UI's files carry a strict CSP and refuse framing; the API
	// still refuses calls without a token.
	res, err := http.Get(base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") ||
		res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("GET /ui/: %d %v", res.StatusCode, res.Header)
	}
	if res, err := http.Get(base + "/api/v1/upstreams"); err != nil || res.StatusCode != 401 {
		t.Fatalf("API without a token: %v %v", err, res)
	}

	// The editor's validation reads a text in the file's place; an include
	// of another file is not echoed back in its errors.
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("s3cr3t-value { x }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := apiClient{t: t, base: base, token: "admin-secret"}
	code, body := admin.do("POST", "/api/v1/config/validate", map[string]any{"content": "include \"" + secret + "\"\n"})
	if code != 422 || strings.Contains(fmt.Sprint(body), "s3cr3t") {
		t.Errorf("validating an include of another file: %d %v", code, body)
	}
	if code, body := admin.do("GET", "/api/v1/config/source", nil); code != 200 || body["content"] != kdl || body["file"] != file {
		t.Errorf("config source: %d %v", code, body)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	browser, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// tab opens a tab (its own session storage) signed in with token.
	tab := func(t *testing.T, token, who string) context.Context {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		ctx, cancel2 := context.WithTimeout(ctx, 60*time.Second)
		t.Cleanup(cancel2)
		run(t, ctx, chromedp.Navigate(base+"/ui/"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Click(chromedp.ID("login-submit")),
			waitText("#who", who))
		return ctx
	}
	shot := func(t *testing.T, ctx context.Context, name string) {
		if !shots {
			return
		}
		run(t, ctx, chromedp.Sleep(300*time.Millisecond))
		// The window, except for the config page, whose diff is below it,
		// and the overview and agents pages, whose charts are (the logs
		// page grows with the traffic).
		shoot := chromedp.CaptureScreenshot()
		if name == "config" || name == "overview" || name == "agents" {
			shoot = chromedp.FullScreenshot(100)
		}
		png := value(t, ctx, shoot)
		if err := os.WriteFile(filepath.Join("..", "docs", "ui", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("login", func(t *testing.T) {
		ctx, cancel := chromedp.NewContext(browser)
		defer cancel()
		run(t, ctx, chromedp.Navigate(base+"/ui/"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), "wrong-token"),
			chromedp.Click(chromedp.ID("login-submit")),
			waitText("#login-error", "401"))
		shot(t, ctx, "login")
		// The token never appears in the URL.
		url := value(t, ctx, chromedp.Location())
		if strings.Contains(url, "token") {
			t.Errorf("URL %q carries the token", url)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		ctx := tab(t, "read-secret", "grafana · read")
		run(t, ctx, chromedp.Navigate(base+"/ui/#/upstreams"),
			chromedp.WaitVisible(chromedp.CSS(`[data-target]`)),
			chromedp.WaitVisible(chromedp.ID("readonly-note")))
		n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#page button, #page input").length`))
		configHidden := value(t, ctx, chromedp.Evaluate[bool](`document.getElementById("nav-config").hidden`))
		if n != 0 || !configHidden {
			t.Errorf("read-only upstreams page: %d controls, config link hidden %v", n, configHidden)
		}
		run(t, ctx, chromedp.Navigate(base+"/ui/#/routes"), chromedp.WaitVisible(chromedp.CSS(`[data-route="api"]`)))
		n = value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#page button").length`))
		if n != 0 {
			t.Errorf("read-only routes page: %d buttons", n)
		}
	})

	t.Run("drain", func(t *testing.T) {
		ctx := tab(t, "operate-secret", "deploy · operate")
		// Some traffic on route web for the overview's charts.
		stop := make(chan struct{})
		loaded := make(chan struct{})
		go func() {
			defer close(loaded)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if res, err := client().Get(proxy + "/page"); err == nil {
						res.Body.Close()
					}
				}
			}
		}()
		defer func() { close(stop); <-loaded }()
		// Two requests in flight on the slow upstream (3 s each): one per
		// target with round robin.
		done := make(chan error, 2)
		for range 2 {
			go func() {
				res, err := client().Get(proxy + "/api/x")
				if err == nil {
					res.Body.Close()
				}
				done <- err
			}()
		}
		row := fmt.Sprintf(`[data-upstream="slow"] tr[data-target="%s"]`, slow1.addr)
		run(t, ctx, chromedp.Navigate(base+"/ui/#/upstreams"),
			waitText(row+" .in-flight", "1"),
			chromedp.Click(chromedp.CSS(row+` button[data-action="drain"]`)),
			waitText(row+" .target-state", "draining"))
		inFlight := value(t, ctx, textOf(row+" .in-flight"))
		if inFlight != "1" {
			t.Errorf("draining with %q in flight, want 1", inFlight)
		}
		shot(t, ctx, "upstreams")
		unlabelled(t, ctx)
		run(t, ctx, waitText(row+" .target-state", "drained"), waitText(row+" .in-flight", "0"))
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("request during the drain: %v", err)
			}
		}
		// Route web's rate chart and windowed latency percentiles.
		run(t, ctx, chromedp.Navigate(base+"/ui/#/overview"), chromedp.WaitVisible(chromedp.CSS(`[data-route="web"] .chart`)),
			waitText(`[data-route="web"] .latency`, "p50 "), chromedp.Sleep(4*time.Second))
		if lat := value(t, ctx, textOf(`[data-route="web"] .latency`)); !strings.Contains(lat, " ms · p90") {
			t.Errorf("route web latency: %q", lat)
		}
		// Upstream web's attempt latency percentiles (the per-upstream
		// histogram), as text and as a chart with its three series.
		run(t, ctx, waitText(`[data-upstream-latency="web"]`, " ms · p90 "))
		if lat := value(t, ctx, textOf(`[data-upstream-latency="web"]`)); !strings.Contains(lat, " ms · p99 ") {
			t.Errorf("upstream web latency: %q", lat)
		}
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-upstream="web"] svg[aria-label^="Latency percentiles"] polyline').length`)); n < 3 {
			t.Errorf("upstream web's latency chart has %d lines, want p50, p90 and p99", n)
		}
		shot(t, ctx, "overview")
	})

	t.Run("agents", func(t *testing.T) {
		ctx := tab(t, "read-secret", "grafana · read")
		// Some allowed requests first, so the agent has latency.
		for range 3 {
			if res, err := client().Get(proxy + "/allowed"); err == nil {
				res.Body.Close()
			}
		}
		cell := func(d string) string { return fmt.Sprintf(`[data-agent-card="waf"] td[data-decision="%s"]`, d) }
		run(t, ctx, chromedp.Navigate(base+"/ui/#/agents"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-agent="waf"]`)),
			chromedp.WaitVisible(chromedp.CSS(cell("block"))))
		before := value(t, ctx, textOf(cell("block")))
		if row := value(t, ctx, textOf(`tr[data-agent="waf"]`)); !strings.Contains(row, "closed") || !strings.Contains(row, "uds") {
			t.Errorf("agent row: %q", row)
		}
		req, _ := http.NewRequest("GET", proxy+"/blocked-by-agent", nil)
		req.Header.Set("X-Want-Waf", "block")
		res, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 403 {
			t.Fatalf("blocked request answered %d", res.StatusCode)
		}
		// The block count goes up by one live, the chart has its series,
		// and the latency column is filled.
		want := "1"
		if before != "0" {
			want = fmt.Sprint(atoi(t, before) + 1)
		}
		run(t, ctx, waitText(cell("block"), want), waitText(`tr[data-agent="waf"] .agent-latency`, " ms"))
		if allow := atoi(t, value(t, ctx, textOf(cell("allow")))); allow < 3 {
			t.Errorf("allow decisions %d, want at least 3", allow)
		}
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-agent-card="waf"] svg polyline[data-series="block"]').length`)); n == 0 {
			t.Error("the decisions chart has no block series")
		}
		unlabelled(t, ctx)
		if shots {
			// Traffic for the charts: allowed requests, a block a second.
			for i := range 40 {
				req, _ := http.NewRequest("GET", proxy+"/traffic", nil)
				if i%5 == 4 {
					req.Header.Set("X-Want-Waf", "block")
				}
				if res, err := client().Do(req); err == nil {
					res.Body.Close()
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		shot(t, ctx, "agents")
	})

	t.Run("route", func(t *testing.T) {
		ctx := tab(t, "operate-secret", "deploy · operate")
		// By keyboard: focus the switch, press Enter.
		run(t, ctx, chromedp.Navigate(base+"/ui/#/routes"),
			chromedp.Focus(chromedp.CSS(`[data-route="web"] button[data-action="toggle"]`)),
			chromedp.KeyEvent("\r"),
			waitText(`[data-route="web"]`, "disabled"))
		unlabelled(t, ctx)
		shot(t, ctx, "routes")
		res, err := client().Get(proxy + "/page")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 503 {
			t.Errorf("disabled route answered %d, want 503", res.StatusCode)
		}
		run(t, ctx, chromedp.Click(chromedp.CSS(`[data-route="web"] button[data-action="toggle"]`)),
			waitText(`[data-route="web"]`, "enabled"))
		if res, err := client().Get(proxy + "/page"); err != nil || res.StatusCode != 200 {
			t.Errorf("re-enabled route: %v %v", err, res)
		}
	})

	t.Run("logs", func(t *testing.T) {
		reader := tab(t, "read-secret", "grafana · read")
		if !value(t, reader, chromedp.Evaluate[bool](`document.getElementById("nav-logs").hidden`)) {
			t.Error("a read token is shown the Logs link")
		}
		ctx := tab(t, "operate-secret", "deploy · operate")
		run(t, ctx, chromedp.Navigate(base+"/ui/#/logs"), chromedp.WaitVisible(chromedp.ID("log-table")))
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#log-select option").length`)); n != 1 {
			t.Errorf("an operate token is offered %d logs, want the access log only", n)
		}
		// Lines appear live; the status filter keeps only the 5xx ones.
		api := apiClient{t: t, base: base, token: "admin-secret"}
		for _, step := range []struct {
			path    string
			enabled bool
		}{{"/live-marker-ok", true}, {"/live-marker-off", false}} {
			api.do("PUT", "/api/v1/routes/web/enabled", map[string]any{"enabled": step.enabled})
			if res, err := client().Get(proxy + step.path); err == nil {
				res.Body.Close()
			}
		}
		api.do("PUT", "/api/v1/routes/web/enabled", map[string]any{"enabled": true})
		run(t, ctx, waitText("#log-table", "/live-marker-ok"), waitText("#log-table", "/live-marker-off"))
		shot(t, ctx, "logs")
		unlabelled(t, ctx)
		run(t, ctx, evalJS(`(() => { const i = document.getElementById("log-status"); i.value = "5xx"; i.dispatchEvent(new Event("input")); return true; })()`),
			chromedp.WaitVisible(chromedp.CSS(`#log-table tbody tr`)))
		text := value(t, ctx, textOf("#log-table"))
		if strings.Contains(text, "/live-marker-ok") {
			t.Errorf("status filter 5xx kept a 200 line: %q", text)
		}

		// The route filter: route api's lines only.
		run(t, ctx, setField("log-status", ""), setField("log-route", "api"), waitText("#log-count", " shown"))
		for _, r := range value(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#log-table tbody tr td:nth-child(2)")].map((td) => td.textContent)`)) {
			if r != "api" {
				t.Errorf("route filter api kept a line of route %q", r)
			}
		}

		// The audit log (admin only) shows the route switch made above.
		admin := tab(t, "admin-secret", "root · admin")
		run(t, admin, chromedp.Navigate(base+"/ui/#/logs"), chromedp.WaitVisible(chromedp.ID("log-table")),
			setField("log-select", "audit"),
			waitText("#log-table", "/api/v1/routes/web/enabled"))

		// An agent's block, as the audit app writes it (its file sink) and
		// tees it into the audit ring: the audit view filters on the
		// decision and the agent, and the access view shows the decision
		// of that request's line (matched by request id).
		req, _ := http.NewRequest("GET", proxy+"/decision-marker", nil)
		req.Header.Set("X-Want-Waf", "block")
		if res, err := client().Do(req); err == nil {
			res.Body.Close()
		}
		traceID := waitAccessLine(t, "/decision-marker")["trace_id"]
		event := waitAuditEvent(t, auditFile, "/decision-marker")
		if event["kind"] != "agent_decision" || event["action"] != "block" || event["actor"] != "waf" || event["route"] != "web" ||
			event["request_id"] == nil || event["request_id"] != traceID {
			t.Errorf("audit event %v, access log trace_id %q", event, traceID)
		}
		auditRingHolds(t, event["id"])
		run(t, admin, setField("log-decision", "block"), waitText("#log-table", "/decision-marker"))
		if text := value(t, admin, textOf("#log-table")); strings.Contains(text, "/api/v1/routes/web/enabled") || !strings.Contains(text, "block · waf") {
			t.Errorf("audit log filtered on block decisions: %q", text)
		}
		run(t, admin, setField("log-agent", "other"), waitText("#log-count", "0 shown"),
			setField("log-agent", "waf"), setField("log-route", "web"), waitText("#log-table", "/decision-marker"))
		unlabelled(t, admin)
		shot(t, admin, "logs-audit")
		if traceID != "" {
			run(t, admin, setField("log-select", "access"), waitText("#log-table", "/decision-marker"))
			if text := value(t, admin, textOf("#log-table")); strings.Contains(text, "/live-marker-ok") || !strings.Contains(text, "block · waf") {
				t.Errorf("access log filtered on block decisions: %q", text)
			}
		} else {
			t.Error("the access log line of the blocked request has no trace_id to match audit events with")
		}
	})

	t.Run("config-error", func(t *testing.T) {
		ctx := tab(t, "admin-secret", "root · admin")
		// Line 4 of the edited text (the listener) gets an unknown setting.
		run(t, ctx, chromedp.Navigate(base+"/ui/#/config"),
			waitText("#config-file", file),
			evalJS(`(() => { const ta = document.getElementById("source");
				const lines = ta.value.split("\n"); lines[3] = lines[3].replace("address", "adress");
				ta.value = lines.join("\n"); ta.dispatchEvent(new Event("input")); return true; })()`),
			chromedp.Click(chromedp.ID("show-diff")),
			waitText("#diff", `+ listeners { listener "main" { adress "`+listen+`"; }; }`),
			chromedp.Click(chromedp.ID("validate")),
			chromedp.WaitVisible(chromedp.CSS(`#gutter div.bad[data-line="4"]`)))
		errs := value(t, ctx, textOf("#errors"))
		if !strings.Contains(errs, "line 4:31") || !strings.Contains(errs, file+":4:31:") || !strings.Contains(errs, `unknown setting "adress"`) {
			t.Errorf("errors shown: %q", errs)
		}
		shot(t, ctx, "config")
		unlabelled(t, ctx)
		// Nothing was applied: the file on disk is unchanged.
		if got, _ := os.ReadFile(file); string(got) != kdl {
			t.Error("validation changed the config file")
		}
	})

	t.Run("config-apply", func(t *testing.T) {
		ctx := tab(t, "admin-secret", "root · admin")
		// Route "api" is moved from upstream "slow" to "web": after the
		// apply, /api/… is answered by the web backend.
		run(t, ctx, chromedp.Navigate(base+"/ui/#/config"),
			waitText("#config-file", file),
			chromedp.WaitVisible(chromedp.ID("apply")),
			evalJS(`(() => { const ta = document.getElementById("source");
				ta.value = ta.value.replace('upstream "slow"\n', 'upstream "web"\n'); ta.dispatchEvent(new Event("input")); return true; })()`),
			chromedp.Click(chromedp.ID("apply")),
			waitText("#apply-diff .add", `upstream "web"`),
			waitText("#apply-diff .del", `upstream "slow"`))
		shot(t, ctx, "config-apply")
		run(t, ctx, chromedp.Click(chromedp.ID("apply-confirm")),
			waitText("#toast", "Applied and reloaded"),
			waitText("#dirty", "Same as the running file"))
		got, _ := os.ReadFile(file)
		if want := strings.Replace(kdl, "upstream \"slow\"\n", "upstream \"web\"\n", 1); string(got) != want {
			t.Fatalf("file after apply:\n%s", got)
		}
		res, err := http.Get(proxy + "/api/applied")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "web /api/applied" {
			t.Errorf("after apply, /api/applied: %d %q", res.StatusCode, b)
		}
		// The write is in the audit log.
		code, body := admin.do("GET", "/api/v1/logs/audit", nil)
		if code != 200 || !strings.Contains(fmt.Sprint(body), "/api/v1/config/source") {
			t.Errorf("audit log: %d %v", code, body)
		}
	})

	t.Run("config-apply-restore", func(t *testing.T) {
		// A text whose listener's port is taken: validation (in a child
		// process, which binds nothing) passes it, the reload fails at
		// its listener check (docs/control-plane.md), the previous file
		// is written back and the running proxy is intact.
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		before, _ := os.ReadFile(file)
		edited := strings.Replace(string(before), `address "`+listen+`"`, `address "`+busy.Addr().String()+`"`, 1)
		b, _ := json.Marshal(map[string]string{"content": edited})
		req, _ := http.NewRequest("PUT", base+"/api/v1/config/source", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer admin-secret")
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(before)
		req.Header.Set("If-Match", `"`+hex.EncodeToString(sum[:])+`"`)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 422 || !strings.Contains(string(out), "previous config file was restored") ||
			!strings.Contains(string(out), busy.Addr().String()) {
			t.Errorf("apply of an unloadable config: %d %s", res.StatusCode, out)
		}
		if got, _ := os.ReadFile(file); string(got) != string(before) {
			t.Errorf("file not restored:\n%s", got)
		}
		res, err = http.Get(proxy + "/api/still")
		if err != nil {
			t.Fatal(err)
		}
		out, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(out) != "web /api/still" {
			t.Errorf("after the failed apply: %d %q", res.StatusCode, out)
		}
	})
}

// run runs actions in ctx, failing the test on an error.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// value runs an action in ctx and returns its value, failing the test on
// an error.
func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// textOf is the text of the element sel, read in the page in one step
// once the element exists (20 s at most): the UI re-renders as it polls,
// and a node found by one DevTools call can be gone by the next ("No
// node with given id found").
func textOf(sel string) chromedp.Action[string] {
	return func(ctx context.Context, tgt *chromedp.Target) (string, error) {
		expr := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? [true, e.textContent] : [false, ""]; })()`, sel)
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := chromedp.Evaluate[[]any](expr)(ctx, tgt)
			if err != nil {
				return "", err
			}
			if found, _ := got[0].(bool); found {
				text, _ := got[1].(string)
				return text, nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("no element %s", sel)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// waitText waits until the text of the element sel contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		deadline := time.Now().Add(20 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			var err error
			got, err = textOf(sel)(ctx, tgt)
			if err != nil {
				return err
			}
			if strings.Contains(got, want) {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("%s: text %q does not contain %q", sel, got, want)
	})
}

// setField sets the value of the input or select id as a user would,
// firing its input and change events.
func setField(id, v string) chromedp.Action[chromedp.Void] {
	return evalJS(fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q;
		e.dispatchEvent(new Event("input")); e.dispatchEvent(new Event("change")); return true; })()`, id, v))
}

// waitAccessLine waits for the access log ring's line of a request to
// path and returns its fields.
func waitAccessLine(t *testing.T, path string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lines, _ := logring.Access.After(0, logring.Size)
		for _, l := range lines {
			var f map[string]any
			if json.Unmarshal([]byte(l.Text), &f) == nil && f["path"] == path {
				out := map[string]string{}
				for k, v := range f {
					out[k] = fmt.Sprint(v)
				}
				return out
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no access log line of %s", path)
	return nil
}

// waitAuditEvent waits for the audit file's event of a request to path.
func waitAuditEvent(t *testing.T, file, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(b), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) == nil && ev["path"] == path {
				return ev
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no audit event of %s in %s", path, file)
	return nil
}

// auditRingHolds fails the test unless the audit ring (the admin UI's
// audit view) holds the audit event with id: the audit app tees each
// event into it as it emits it, before a sink writes it.
func auditRingHolds(t *testing.T, id any) {
	t.Helper()
	lines, _ := logring.Audit.After(0, logring.Size)
	for _, l := range lines {
		if strings.Contains(l.Text, fmt.Sprint(id)) {
			return
		}
	}
	t.Errorf("the audit ring has no line of event %v", id)
}

// atoi parses a count shown by the UI.
func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("count %q: %v", s, err)
	}
	return n
}

// evalJS runs a JavaScript expression, dropping its value.
func evalJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](expr)(ctx, tgt)
		return err
	})
}

// unlabelled fails the test when a control of the page has no
// accessible name: an input, select or textarea without a label or
// aria-label, a button or link without text or aria-label.
func unlabelled(t *testing.T, ctx context.Context) {
	t.Helper()
	bad := value(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input, select, textarea, button, a")]
		.filter((e) => !e.closest("[hidden]"))
		.filter((e) => !(e.getAttribute("aria-label") || (e.labels && e.labels.length) || (!["INPUT", "SELECT", "TEXTAREA"].includes(e.tagName) && e.textContent.trim())))
		.map((e) => e.outerHTML.slice(0, 120))`))
	if len(bad) > 0 {
		t.Errorf("controls without an accessible name: %q", bad)
	}
}
