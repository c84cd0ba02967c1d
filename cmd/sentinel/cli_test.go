package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/buildinfo"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// runCLI runs the command line in-process in dir and returns the exit
// status, standard output and standard error.
func runCLI(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	t.Chdir(dir)
	t.Setenv("SENTINEL_CONFIG", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var out, errOut bytes.Buffer
	code := run(append([]string{"sentinel"}, args...), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

// TestHelpIsSentinels: `sentinel`, `sentinel help` and `sentinel help
// run` describe Sentinel (sentinel.kdl, SENTINEL_CONFIG, the embedded
// default), not Caddy's Caddyfile.
func TestHelpIsSentinels(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"--help"}, {"help", "run"}, {"run", "--help"}, {"help", "validate"}, {"help", "start"}} {
		code, out, errOut := runCLI(t, t.TempDir(), args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		for _, bad := range []string{"Caddyfile", "caddyserver.com/docs", "caddy run", "Caddy process"} {
			if strings.Contains(out, bad) {
				t.Errorf("%v: help mentions %q:\n%s", args, bad, out)
			}
		}
		for _, want := range []string{"sentinel.kdl", "SENTINEL_CONFIG", "embedded default"} {
			flat := strings.Join(strings.Fields(out), " ")
			if !strings.Contains(flat, want) {
				t.Errorf("%v: help does not mention %q:\n%s", args, want, out)
			}
		}
	}
	_, out, _ := runCLI(t, t.TempDir(), "help", "run")
	if strings.Contains(out, "pingback") {
		t.Error("the internal --pingback flag is shown")
	}
}

// TestCommandsOffered: commands that would replace the binary with stock
// Caddy or that only handle Caddyfiles are not listed, and running one
// says why; the rest are there.
func TestCommandsOffered(t *testing.T) {
	_, out, _ := runCLI(t, t.TempDir(), "help")
	for name := range dropped {
		if regexp.MustCompile(`(?m)^  ` + name + ` `).MatchString(out) {
			t.Errorf("%s is offered:\n%s", name, out)
		}
		code, _, errOut := runCLI(t, t.TempDir(), name, "--keep-backup")
		if code == 0 || !strings.Contains(errOut, "sentinel "+name+" is not available") {
			t.Errorf("%s: exit %d, %q", name, code, errOut)
		}
	}
	for _, name := range []string{"run", "start", "stop", "reload", "adapt", "validate", "version", "list-modules", "environ", "completion", "manpage"} {
		if !regexp.MustCompile(`(?m)^  ` + name + ` `).MatchString(out) {
			t.Errorf("%s is missing:\n%s", name, out)
		}
	}
	for _, name := range []string{"upgrade", "add-package", "remove-package"} {
		if _, ok := dropped[name]; !ok {
			t.Errorf("%s is not dropped", name)
		}
	}
}

// TestVersionCommand: `sentinel version` and `--version` print
// Sentinel's version from VERSION, with Caddy's and Go's.
func TestVersionCommand(t *testing.T) {
	file, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	want := "sentinel " + strings.TrimSpace(string(file)) + " ("
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCLI(t, t.TempDir(), args...)
		if code != 0 || !strings.HasPrefix(out, want) || out != buildinfo.String()+"\n" {
			t.Errorf("%v: %d %q, want %q…", args, code, out, want)
		}
	}
}

// TestValidateReadable: errors are printed as file:line:col: message,
// one per finding, with the source line and a caret under the column, and
// a non-zero status; --json prints one JSON document instead.
func TestValidateReadable(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.kdl"), []byte("system { }\nlisteners {\n\tlistener \"a\" { adress \"x\"; }\n  listener \"b\" { address \"127.0.0.1:1\"; protocol \"htp\"; }\n}\n"), 0o644)
	code, out, errOut := runCLI(t, dir, "validate", "--config", "bad.kdl")
	if code == 0 || strings.Contains(out, "Valid configuration") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := "bad.kdl:3:17: unknown setting \"adress\" in listeners.listener (did you mean \"address\"?)\n" +
		" 3 | \tlistener \"a\" { adress \"x\"; }\n" +
		"   | \t               ^\n"
	if !strings.Contains(errOut, want) {
		t.Errorf("first error:\n%s\nwant:\n%s", errOut, want)
	}
	if !strings.Contains(errOut, "bad.kdl:4:50: protocol \"htp\"") || !strings.Contains(errOut, "   | "+strings.Repeat(" ", 49)+"^\n") {
		t.Errorf("second error:\n%s", errOut)
	}
	if strings.Contains(errOut, `"level"`) || strings.Contains(errOut, `\n`) {
		t.Errorf("errors inside a log line:\n%s", errOut)
	}

	code, out, _ = runCLI(t, dir, "validate", "--config", "bad.kdl", "--json")
	var r report
	if code == 0 || json.Unmarshal([]byte(out), &r) != nil || r.Valid || len(r.Errors) != 2 ||
		r.Errors[0] != (finding{File: "bad.kdl", Line: 3, Column: 17, Message: `unknown setting "adress" in listeners.listener (did you mean "address"?)`}) {
		t.Errorf("--json: %d %s", code, out)
	}

	code, out, errOut = runCLI(t, dir, "adapt", "--config", "bad.kdl")
	if code == 0 || out != "" || !strings.Contains(errOut, "bad.kdl:3:17: unknown setting") || !strings.Contains(errOut, "^") {
		t.Errorf("adapt: %d %q %q", code, out, errOut)
	}
}

// TestValidateNamesTheFile: validate says which configuration it
// checked; in a folder without sentinel.kdl that is the embedded default.
func TestValidateNamesTheFile(t *testing.T) {
	code, out, errOut := runCLI(t, t.TempDir(), "validate")
	if code != 0 || !strings.HasPrefix(out, "Valid configuration: embedded default config (") {
		t.Errorf("empty folder: %d %q %s", code, out, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sentinel.kdl"), []byte("system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\nroutes { route \"h\" { builtin-handler \"health\"; } }\n"), 0o644)
	code, out, errOut = runCLI(t, dir, "validate")
	if code != 0 || out != "Valid configuration: sentinel.kdl\n" {
		t.Errorf("./sentinel.kdl: %d %q %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, dir, "validate", "--json")
	if code != 0 || !strings.Contains(out, `"config":"sentinel.kdl","valid":true`) {
		t.Errorf("--json: %d %q", code, out)
	}
	code, _, errOut = runCLI(t, dir, "validate", "--config", "missing.kdl")
	if code == 0 || !strings.Contains(errOut, "missing.kdl") {
		t.Errorf("missing file: %d %q", code, errOut)
	}
}

// TestAdaptWarningsAndEnvfile: warnings are printed with their position,
// and --envfile fills ${VAR}.
func TestAdaptWarningsAndEnvfile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "env"), []byte("# comment\nexport FH_ADDR=\"127.0.0.1:7\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "s.kdl"), []byte("system { worker-threads 4; }\nlisteners { listener \"a\" { address \"${FH_ADDR}\"; } }\nroutes { route \"h\" { builtin-handler \"health\"; } }\n"), 0o644)
	code, out, errOut := runCLI(t, dir, "adapt", "--config", "s.kdl", "--envfile", "env")
	if code != 0 || !strings.Contains(out, `127.0.0.1:7`) {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "s.kdl:1: warning: ") || !strings.Contains(errOut, " 1 | system { worker-threads 4; }") {
		t.Errorf("warning: %q", errOut)
	}
	os.WriteFile(filepath.Join(dir, "badenv"), []byte("NOEQUALS\n"), 0o644)
	if code, _, errOut := runCLI(t, dir, "adapt", "--config", "s.kdl", "--envfile", "badenv"); code == 0 || !strings.Contains(errOut, "badenv:1") {
		t.Errorf("bad envfile: %d %q", code, errOut)
	}
}

func TestCaretPad(t *testing.T) {
	for _, c := range []struct {
		line string
		col  int
		want string
	}{{"abc", 1, ""}, {"abc", 3, "  "}, {"\tx", 2, "\t"}, {"é x", 3, "  "}, {"ab", 5, "    "}} {
		if got := caretPad(c.line, c.col); got != c.want {
			t.Errorf("caretPad(%q, %d) = %q, want %q", c.line, c.col, got, c.want)
		}
	}
}

// TestRunPrintsReadableErrors: `sentinel run` with a bad file prints its
// errors as validate does and exits 1 without starting.
func TestRunPrintsReadableErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sentinel.kdl"), []byte("system { }\nlisteners { listener \"a\" { adress \"x\"; } }\n"), 0o644)
	code, _, errOut := runCLI(t, dir, "run")
	if code != 1 || !strings.Contains(errOut, "sentinel.kdl:2:28: unknown setting \"adress\"") || !strings.Contains(errOut, "not started") || strings.Contains(errOut, `"level"`) {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
}

// asSentinelEnv makes the test binary run as the sentinel command (see
// TestMain), so that start can start it.
const asSentinelEnv = "SENTINEL_TEST_AS_COMMAND"

// TestStartInProcess: start runs `run` in the background (here the test
// binary acting as sentinel), waits until it serves, and says so in
// Sentinel's words; a config that fails makes start fail.
func TestStartInProcess(t *testing.T) {
	t.Setenv(asSentinelEnv, "1")
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	os.WriteFile(filepath.Join(dir, "s.kdl"), []byte(`system { caddy-admin "`+admin+`"; }
listeners { listener "main" { address "`+listen+`"; }; }
routes { route "s" { builtin-handler "status"; }; }
`), 0o644)
	code, out, errOut := runCLI(t, dir, "start", "--config", "s.kdl", "--pidfile", filepath.Join(dir, "pid"))
	defer runCLI(t, dir, "stop", "--address", admin)
	if code != 0 || !strings.Contains(out, "Sentinel started in the background (pid ") {
		t.Fatalf("start: %d %q %q", code, out, errOut)
	}
	if status, _ := waitGet(t, "http://"+listen+"/"); status != 200 {
		t.Errorf("status %d", status)
	}
	if code, _, errOut := runCLI(t, dir, "stop", "--address", admin); code != 0 {
		t.Errorf("stop: %d %s", code, errOut)
	}

	os.WriteFile(filepath.Join(dir, "bad.kdl"), []byte("system { }\nlisteners { listener \"a\" { adress \"x\"; } }\n"), 0o644)
	code, _, errOut = runCLI(t, dir, "start", "--config", "bad.kdl", "--watch", "--envfile", filepath.Join(dir, "none"))
	if code == 0 || !strings.Contains(errOut, "sentinel start: sentinel run: exit status 1") {
		t.Errorf("start of a bad config: %d %q", code, errOut)
	}
}

// TestCheckVariants: adapt --pretty and --validate, a config on standard
// input, a JSON config, an unknown adapter, and the names in messages.
func TestCheckVariants(t *testing.T) {
	dir := t.TempDir()
	good := "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\nroutes { route \"h\" { builtin-handler \"health\"; } }\n"
	os.WriteFile(filepath.Join(dir, "good.kdl"), []byte(good), 0o644)
	code, out, errOut := runCLI(t, dir, "adapt", "--config", "good.kdl", "--pretty", "--validate")
	if code != 0 || !strings.Contains(out, "\n\t\"apps\": {") {
		t.Errorf("adapt --pretty --validate: %d %q %q", code, out[:min(len(out), 80)], errOut)
	}
	code, out, _ = runCLI(t, dir, "adapt", "--config", "good.kdl", "--json")
	if code != 0 || !strings.HasPrefix(out, "{") {
		t.Errorf("adapt --json: %d", code)
	}
	// Caddy JSON: validated as it is.
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:1"]}}}}}`), 0o644)
	if code, out, errOut := runCLI(t, dir, "validate", "--config", "c.json"); code != 0 || out != "Valid configuration: c.json\n" {
		t.Errorf("json: %d %q %q", code, out, errOut)
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"apps":{"nope":{}}}`), 0o644)
	if code, _, errOut := runCLI(t, dir, "validate", "--config", "bad.json"); code == 0 || !strings.Contains(errOut, "bad.json: ") || !strings.Contains(errOut, "nope") {
		t.Errorf("bad json: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "adapt", "--config", "good.kdl", "--adapter", "nope"); code == 0 || !strings.Contains(errOut, `unknown config adapter "nope"`) {
		t.Errorf("unknown adapter: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "adapt", "--config", "missing.kdl"); code == 0 || !strings.Contains(errOut, "missing.kdl") {
		t.Errorf("missing: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "validate", "--config", "missing.kdl", "--json"); code == 0 {
		t.Errorf("missing --json: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "adapt", "--config", "good.kdl", "--envfile", "missing.env"); code == 0 || !strings.Contains(errOut, "missing.env") {
		t.Errorf("missing envfile: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "validate", "--config", "good.kdl", "--envfile", "missing.env"); code == 0 || !strings.Contains(errOut, "missing.env") {
		t.Errorf("validate, missing envfile: %d %q", code, errOut)
	}

	// Standard input: positions point at "-", the lines come from it.
	t.Chdir(dir)
	var out2, errOut2 strings.Builder
	code = run([]string{"sentinel", "adapt", "--config", "-", "--adapter", "kdl"}, &cliEnv{stdin: strings.NewReader("system { }\nlisteners { listener \"a\" { adress \"x\"; } }\n"), stdout: &out2, stderr: &errOut2})
	if code == 0 || !strings.Contains(errOut2.String(), "-:2:28: unknown setting") || !strings.Contains(errOut2.String(), ` 2 | listeners { listener "a" { adress "x"; } }`) || !strings.Contains(errOut2.String(), "standard input: 1 error") {
		t.Errorf("stdin: %d %q", code, errOut2.String())
	}

	e := &cliEnv{dirs: map[string]string{"/tmp/entry.kdl": "/etc/sentinel"}}
	if got := e.label("/tmp/entry.kdl"); got != "configuration directory /etc/sentinel" {
		t.Errorf("label: %q", got)
	}
}

// TestManpageAndExitCodes: manpage writes Sentinel's pages; Caddy's
// statuses above 1 reach the exit status.
func TestManpageAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, dir, "manpage", "--directory", filepath.Join(dir, "man")); code != 0 {
		t.Fatalf("manpage: %d %s", code, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "man", "sentinel-validate.8")); err != nil || !strings.Contains(string(b), "SENTINEL") {
		t.Errorf("manpage: %v", err)
	}
	if code, _, _ := runCLI(t, dir, "manpage"); code == 0 {
		t.Error("manpage without --directory")
	}
	if got := exitCode(fakeExit(3)); got != 3 {
		t.Errorf("exit code %d, want 3", got)
	}
	if got := exitCode(&exitError{code: 2, err: os.ErrNotExist}); got != 2 || (&exitError{err: os.ErrNotExist}).Error() == "" {
		t.Errorf("exitError: %d", got)
	}
	if got := exitCode(os.ErrNotExist); got != 1 {
		t.Errorf("plain error: %d", got)
	}
}

// fakeExit has the shape of caddycmd's unexported exit error.
type fakeExitError struct {
	ExitCode int
	Err      error
}

func (e *fakeExitError) Error() string { return "exit" }

func fakeExit(code int) error { return &fakeExitError{ExitCode: code} }
