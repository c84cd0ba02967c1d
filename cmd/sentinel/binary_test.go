package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestMain removes the built binary at the end.
func TestMain(m *testing.M) {
	// TestStartInProcess starts this test binary as `sentinel run`.
	if os.Getenv(asSentinelEnv) == "1" {
		os.Exit(run(os.Args, &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
	}
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

// buildBinary builds the sentinel binary (CGO_ENABLED=0, as the container
// image does) once for the binary tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	return testutil.Build(t, "./cmd/sentinel")
}

func waitGet(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBinaryServesEmbeddedDefault starts the built binary with no flags in
// an empty directory: it serves the embedded default config.
func TestBinaryServesEmbeddedDefault(t *testing.T) {
	bin := buildBinary(t)
	mainAddr, opsAddr, admin := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	p := testutil.NewProcess(t, "sentinel", append(os.Environ(), "SENTINEL_MAIN_ADDRESS="+mainAddr, "SENTINEL_OPS_ADDRESS="+opsAddr,
		"CADDY_ADMIN="+admin, "TMPDIR="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir()), bin, "run")
	p.Dir = t.TempDir()
	p.Start()

	status, body := waitGet(t, "http://"+mainAddr+"/anything")
	var st map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &st) != nil || st["status"] != "ok" {
		t.Fatalf("status page: %d %q", status, body)
	}
	for _, p := range []string{"/health", "/healthz", "/ready"} {
		want := map[string]string{"/ready": `"ready"`}[p]
		if want == "" {
			want = `"healthy"`
		}
		if status, body := waitGet(t, "http://"+opsAddr+p); status != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q", p, status, body)
		}
	}
	if status, body := waitGet(t, "http://"+opsAddr+"/metrics"); status != 200 || !strings.Contains(body, "# HELP caddy_") {
		t.Errorf("metrics on the ops listener: %d", status)
	}
	// Metrics stay off the main listener: there the status page answers.
	if _, body := waitGet(t, "http://"+mainAddr+"/metrics"); strings.Contains(body, "# HELP") {
		t.Error("metrics exposed on the main listener")
	}
}

// TestBinaryAdaptAndValidate checks that --config x.kdl implies the KDL
// adapter, and that a bad file fails with file:line:col.
func TestBinaryAdaptAndValidate(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.kdl")
	os.WriteFile(good, []byte("system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\nroutes { route \"h\" { builtin-handler \"health\"; } }\n"), 0o644)
	out, err := exec.Command(bin, "adapt", "--config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"sentinel_builtin"`) {
		t.Fatalf("adapt: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.kdl")
	os.WriteFile(bad, []byte("system { }\nlisteners {\n  listener \"a\" { adress \"x\"; }\n}\n"), 0o644)
	out, err = exec.Command(bin, "validate", "--config", bad).CombinedOutput()
	// One line per error, as people read it, then the source line.
	if err == nil || !strings.Contains(string(out), bad+`:3:18: unknown setting "adress" in listeners.listener (did you mean "address"?)`+"\n 3 |   listener") {
		t.Fatalf("validate of a bad file: %v\n%s", err, out)
	}
}

// TestBinaryVersionAndStart: the binary reports Sentinel's version from
// VERSION with the Caddy and Go it was built with, and `sentinel start`
// speaks of Sentinel, serves, and stops with `sentinel stop`.
func TestBinaryVersionAndStart(t *testing.T) {
	bin := buildBinary(t)
	file, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	want := regexp.MustCompile(`^sentinel ` + regexp.QuoteMeta(strings.TrimSpace(string(file))) + ` \(caddy v2\.[0-9]+\.[0-9]+, go1\.[0-9.]+\)\n$`)
	if err != nil || !want.Match(out) {
		t.Fatalf("version: %q %v", out, err)
	}

	dir := t.TempDir()
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	config := filepath.Join(dir, "s.kdl")
	os.WriteFile(config, []byte(`system { caddy-admin "`+admin+`"; }
listeners { listener "main" { address "`+listen+`"; }; }
routes { route "s" { builtin-handler "status"; }; }
`), 0o644)
	env := append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	// The background process inherits start's output: a file, not a pipe
	// that would stay open while it runs.
	logFile, err := os.Create(filepath.Join(dir, "start.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := exec.CommandContext(ctx, bin, "start", "--config", config)
	start.Env, start.Stdout, start.Stderr = env, logFile, logFile
	err = start.Run()
	out, _ = os.ReadFile(logFile.Name())
	defer func() {
		stop := exec.Command(bin, "stop", "--address", admin)
		stop.Env = env
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("stop: %v\n%s", err, out)
		}
	}()
	if err != nil || !strings.Contains(string(out), "Sentinel started in the background") || strings.Contains(string(out), "Successfully started Caddy") {
		t.Fatalf("start: %v\n%s", err, out)
	}
	status, body := waitGet(t, "http://"+listen+"/")
	var st map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &st) != nil || st["version"] != strings.TrimSpace(string(file)) ||
		!strings.HasPrefix(fmt.Sprint(st["caddy_version"]), "v2.") {
		t.Errorf("status page: %d %s", status, body)
	}
}

// TestBinaryStateSurvivesRestart: changes made through the control-plane
// API are written to the state file and are there again after the
// process restarts.
func TestBinaryStateSurvivesRestart(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	listen, api, admin := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	config := filepath.Join(dir, "sentinel.kdl")
	os.WriteFile(config, []byte(`system { }
listeners { listener "main" { address "`+listen+`"; }; }
routes { route "r" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; }; }
admin-api {
    address "`+api+`"
    auth { token "${TOKEN}"; }
    allowed-target-networks "127.0.0.0/8"
    state-file "`+filepath.Join(dir, "state", "state.json")+`"
}
`), 0o644)
	p := testutil.NewProcess(t, "sentinel", append(os.Environ(), "TOKEN=t0k", "CADDY_ADMIN="+admin, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir),
		bin, "run", "--config", config)
	p.Grace = 15 * time.Second
	call := func(method, path, body string) (int, string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			req, _ := http.NewRequest(method, "http://"+api+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer t0k")
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	p.Start()
	if code, body := call("POST", "/api/v1/upstreams/u/targets", `{"address":"127.0.0.1:2","weight":4}`); code != 201 {
		t.Fatalf("add target: %d %s", code, body)
	}
	if code, body := call("PUT", "/api/v1/routes/r/enabled", `{"enabled":false}`); code != 200 {
		t.Fatalf("disable route: %d %s", code, body)
	}
	p.Stop()

	p.Start()
	_, body := call("GET", "/api/v1/upstreams/u", "")
	if !strings.Contains(body, `"127.0.0.1:2"`) || !strings.Contains(body, `"weight":4`) {
		t.Errorf("after restart: %s", body)
	}
	_, body = call("GET", "/api/v1/routes", "")
	if !strings.Contains(body, `"enabled":false`) {
		t.Errorf("route flag after restart: %s", body)
	}
}
