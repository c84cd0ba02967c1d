package kdladapter

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// sha256Hex is the lowercase hex SHA-256 of s.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// adaptErr adapts src as test.kdl with env and returns the error text,
// failing the test when it adapts.
func adaptErr(t *testing.T, src string, env func(string) (string, bool)) string {
	t.Helper()
	out, _, err := Adapt("test.kdl", []byte(src), env, OSFiles{})
	if err == nil {
		t.Fatalf("adapted, expected an error:\n%s\n--- out ---\n%s", src, out)
	}
	return err.Error()
}

// TestUnquotedEnvRefused: `${X}` outside quotes is "$" followed by a
// children block, which the adapter used to drop (token "$" had admin
// scope); `$X` is the literal "$X". Both are errors that show the quoted
// form, at the value's position, wherever they are written.
func TestUnquotedEnvRefused(t *testing.T) {
	api := func(tok string) string {
		return minimal + "admin-api {\n    auth {\n        token " + tok + "\n    }\n}\n"
	}
	cases := []struct{ name, src, want string }{
		{"braces", api("${ADMIN_API_TOKEN}"), `test.kdl:10:15: unquoted ${ADMIN_API_TOKEN} is not expanded (KDL reads {…} as a children block): write token "${ADMIN_API_TOKEN}"`},
		{"default", api("${X:-d}"), `test.kdl:10:15: unquoted ${X:-d} is not expanded (KDL reads {…} as a children block): write token "${X:-d}"`},
		{"default with a space", api("${X:-two words}"), `write token "${X:-two words}"`},
		{"not a reference", api("${A; B}"), `test.kdl:10:15: unquoted $ is not expanded: write token "$"`},
		{"dollar name", api("$ADMIN_API_TOKEN"), `test.kdl:10:15: unquoted $ADMIN_API_TOKEN is the literal text "$ADMIN_API_TOKEN", not an environment variable: write token "${ADMIN_API_TOKEN}"`},
		{"registration token", minimal + "agents { registration { unix-socket \"/x\"; token ${AGENT_TOKEN}\n } }", `test.kdl:8:49: unquoted ${AGENT_TOKEN} is not expanded (KDL reads {…} as a children block): write token "${AGENT_TOKEN}"`},
		{"property", minimal + "admin-api { auth { token \"t\" scope=$SCOPE; }; }", `test.kdl:8:36: unquoted $SCOPE is the literal text "$SCOPE", not an environment variable: write scope="${SCOPE}"`},
		{"open block", minimal + "agents { agent \"a\" { unix-socket \"/x\"; config { key ${KEY}\n }; } }", `write key "${KEY}"`},
		{"followed by a property", minimal + "admin-api { auth { token ${ADMIN_API_TOKEN} scope=\"read\"; }; }", `test.kdl:8:45: unexpected 's', expected ';' or a newline after the children block (arguments and properties must come before children) (an unquoted ${…} is read as "$" and a children block: quote it, "${…}")`},
		{"listener address", "system { }\nlisteners { listener \"a\" { address ${ADDR}\n } }", `test.kdl:2:36: unquoted ${ADDR} is not expanded`},
	}
	env := envOf("ADMIN_API_TOKEN", "tok-from-env", "X", "x", "AGENT_TOKEN", "agent-tok", "SCOPE", "read", "KEY", "k", "ADDR", "127.0.0.1:1")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := adaptErr(t, c.src, env)
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not contain %q:\n%s", c.want, msg)
			}
			if strings.Contains(msg, "children block { … }") {
				t.Errorf("the reference's block is reported twice:\n%s", msg)
			}
		})
	}
	// Quoted, the same configs adapt.
	out, _, err := Adapt("test.kdl", []byte(api(`"${ADMIN_API_TOKEN}"`)), env, OSFiles{})
	if err != nil || !strings.Contains(string(out), sha256Hex("tok-from-env")) {
		t.Fatalf("quoted token: %v %s", err, out)
	}
}

// TestLeafRefusesChildren: a key the schema knows as a setting refuses a
// children block everywhere the generic walker goes, whatever the
// block holds.
func TestLeafRefusesChildren(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"system", "system { caddy-admin { off; }; }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }", "test.kdl:1:10: caddy-admin is a setting: it takes values, not a children block"},
		{"token after a value", minimal + "admin-api { auth { token \"t\" { x; }; }; }", "test.kdl:8:20: token is a setting"},
		{"registration token", minimal + "agents { registration { unix-socket \"/x\"; token \"t\" { T; }; } }", "test.kdl:8:43: token is a setting"},
		{"route priority", minimal + "routes { route \"a\" { priority \"high\" { }; builtin-handler \"health\"; } }", "test.kdl:8:22: priority is a setting"},
		{"filter key", minimal + "filters { filter \"c\" { type \"cors\"; allowed-origins \"*\" { x; }; } }", "test.kdl:8:37: allowed-origins is a setting"},
		{"empty block", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\" { }; } }", "test.kdl:2:28: address is a setting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if msg := adaptErr(t, c.src, noEnv); !strings.Contains(msg, c.want) {
				t.Errorf("error does not contain %q:\n%s", c.want, msg)
			}
		})
	}
	// Blocks of the schema still work, the target's too.
	mustAdapt(t, minimal+"routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { target { address \"127.0.0.1:1\"; weight 2; metadata { zone \"a\"; }; }; } }")
}

// TestSecretsNotInErrors: a value from the environment that fails a
// check is shown as the variable that gave it, never as the value, in
// every kind of check (enumerations, addresses, numbers, regexes, scopes,
// names) and in warnings.
func TestSecretsNotInErrors(t *testing.T) {
	const secret = "s3cr3t-V4lue(x"
	env := envOf("SECRET", secret, "SHORT", "xy")
	route := func(body string) string {
		return minimal + "routes { route \"a\" { " + body + " } }\n"
	}
	cases := []struct{ name, src, want string }{
		{"priority", route(`priority "${SECRET}"; builtin-handler "health";`), `priority "${SECRET}" is not`},
		{"listener address", "system { }\nlisteners { listener \"a\" { address \"${SECRET}\"; } }", `"${SECRET}"`},
		{"protocol", "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; protocol \"${SECRET}\"; } }", `protocol "${SECRET}"`},
		{"target", route(`upstream "u";`) + `upstreams { upstream "u" { target "${SECRET}"; } }`, `target "${SECRET}"`},
		{"target with prefix", route(`upstream "u";`) + `upstreams { upstream "u" { target "h-${SECRET}"; } }`, `target "h-${SECRET}"`},
		{"regex", route(`matches { path-regex "${SECRET}"; }; builtin-handler "health";`), `path-regex "${SECRET}" does not compile: missing closing )`},
		{"scope", minimal + `admin-api { auth { token "t" scope="${SECRET}"; }; }`, `scope "${SECRET}" is not one of`},
		{"auth type", minimal + `admin-api { auth { type "${SECRET}"; token "t"; }; }`, `type "${SECRET}" is not one of bearer`},
		{"api address", minimal + `admin-api { address "${SECRET}"; auth { token "t"; }; }`, `admin-api address "${SECRET}" must be host:port`},
		{"upstream name", route(`upstream "${SECRET}";`), `upstream "${SECRET}" is not defined`},
		{"builtin", route(`builtin-handler "${SECRET}";`), `builtin-handler "${SECRET}"`},
		{"type error", route(`builtin-handler "health"; policies { timeout-secs "${SECRET}"; };`), `timeout-secs takes an integer, not string "${SECRET}"`},
		{"size", route(`builtin-handler "health"; policies { max-body-size "${SECRET}"; };`), `invalid size "${SECRET}"`},
		{"load balancing", route(`upstream "u";`) + `upstreams { upstream "u" { target "127.0.0.1:1"; load-balancing "${SECRET}"; } }`, `load-balancing "${SECRET}"`},
		{"include (warning)", "system { }\ninclude \"${SECRET}\"\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }", `include "${SECRET}" matches no file`},
		{"short value quoted", route(`priority "${SHORT}"; builtin-handler "health";`), `priority "${SHORT}" is not`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, warns, err := Adapt(filepath.Join(dir, "test.kdl"), []byte(c.src), env, OSFiles{})
			if err == nil && !strings.HasSuffix(c.name, "(warning)") {
				t.Fatalf("adapted, expected an error")
			}
			msg := warningsText(warns)
			if err != nil {
				msg = err.Error() + "\n" + msg
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not contain %q:\n%s", c.want, msg)
			}
			for _, leak := range []string{secret, "s3cr3t", `"xy"`} {
				if strings.Contains(msg, leak) {
					t.Errorf("the message shows the value (%q):\n%s", leak, msg)
				}
			}
		})
	}
}

// TestSecretsRedaction covers the redaction rules themselves.
func TestSecretsRedaction(t *testing.T) {
	d := &diag{}
	d.redact("", "${EMPTY}")
	d.redact("ab", "${SHORT}")
	d.redact("tab\there", "${TAB}")
	d.redact("long-secret", "${LONG}")
	d.redact("long-secret-and-more", "${LONGER}")
	d.redact("long-secret", "${AGAIN}")
	d.errorf(testPos, "%q %q %s %q ab cab `ab` %s", "long-secret", "long-secret-and-more", "xlong-secretx", "tab\there", "tab\there")
	want := `test.kdl:1:1: "${LONG}" "${LONGER}" x${LONG}x "${TAB}" ab cab ` + "`${SHORT}`" + ` ${TAB}`
	if got := d.errs[0].String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	d.errorf(testPos, "%q", "ab")
	if got := d.errs[1].msg; got != `"${SHORT}"` {
		t.Errorf("short quoted value: %s", got)
	}
}

// TestIncludeRefusesSpecialFiles: include reads regular files only; a
// device, a FIFO, a socket or a directory is refused at once with what
// it is (include "/dev/zero" ran adapt out of memory, a FIFO blocked it).
func TestIncludeRefusesSpecialFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no devices, FIFOs or Unix sockets")
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.kdl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	cases := []struct{ name, include, want string }{
		{"character device", "/dev/zero", "/dev/zero is a character device, not a regular file"},
		{"fifo", fifo, "fifo.kdl is a named pipe (FIFO), not a regular file"},
		{"socket", sock, "s.sock is a socket, not a regular file"},
		{"directory", filepath.Join(dir, "sub"), "sub is a directory, not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "system { }\ninclude \"" + c.include + "\"\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\n"
			done := make(chan error, 1)
			go func() {
				_, _, err := Adapt(filepath.Join(dir, "main.kdl"), []byte(src), noEnv, OSFiles{})
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "main.kdl:2:1: include") || !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %v, want %q", err, c.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("include still reading after 10s")
			}
		})
	}
	// Without the adapter: OSFiles itself refuses them.
	for _, name := range []string{"/dev/zero", fifo} {
		if _, err := (OSFiles{}).ReadFile(name); err == nil {
			t.Errorf("ReadFile(%s) read it", name)
		}
	}
}

// TestIncludeSizeLimit: the files of a configuration may have
// MaxConfigBytes together; reading stops at the limit.
func TestIncludeSizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.kdl")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(MaxConfigBytes + 1) // sparse
	f.Close()
	main := filepath.Join(dir, "main.kdl")
	src := "system { }\ninclude \"big.kdl\"\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\n"
	_, _, err = Adapt(main, []byte(src), noEnv, OSFiles{})
	if err == nil || !strings.Contains(err.Error(), "main.kdl:2:1: include \"big.kdl\": "+big+" makes the configuration larger than the limit of 16 MiB for all its files together") {
		t.Errorf("big file: %v", err)
	}

	// Two files that fit alone but not together: the second is read
	// with what is left, no more.
	const line = "// padding padding padding padding padding padding padding\n"
	half := strings.Repeat(line, (MaxConfigBytes/2+1024)/len(line))
	files := &recordingFiles{files: map[string]string{
		filepath.Join(dir, "a.kdl"): half,
		filepath.Join(dir, "b.kdl"): half,
	}}
	src = "system { }\ninclude \"*.kdl\"\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\n"
	_, _, err = Adapt(main, []byte(src), noEnv, files)
	if err == nil || !strings.Contains(err.Error(), "b.kdl makes the configuration larger than the limit") {
		t.Errorf("two halves: %v", err)
	}
	if want := int64(MaxConfigBytes - len(src) - len(half)); files.max[1] != want {
		t.Errorf("second file read with a limit of %d, want %d", files.max[1], want)
	}

	// The main file alone.
	_, _, err = Adapt(main, make([]byte, MaxConfigBytes+1), noEnv, OSFiles{})
	if err == nil || !strings.Contains(err.Error(), "main.kdl:1:1: the configuration has 16777217 bytes, more than the limit of 16 MiB") {
		t.Errorf("big main file: %v", err)
	}

	// Files that do not bound their reads are checked after reading.
	_, _, err = Adapt(main, []byte(src), noEnv, unboundedFiles{files})
	if err == nil || !strings.Contains(err.Error(), "b.kdl makes the configuration larger than the limit") {
		t.Errorf("unbounded Files: %v", err)
	}

	// OSFiles stops at the limit it is given.
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("0123456789"), 0o600)
	if _, err := (OSFiles{}).ReadFileMax(small, 9); !errors.Is(err, ErrConfigTooLarge) {
		t.Errorf("ReadFileMax over the limit: %v", err)
	}
	if b, err := (OSFiles{}).ReadFileMax(small, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("ReadFileMax at the limit: %q %v", b, err)
	}
	// /proc files say 0 bytes: the read itself is bounded.
	if runtime.GOOS == "linux" {
		if _, err := (OSFiles{}).ReadFileMax("/proc/self/maps", 10); !errors.Is(err, ErrConfigTooLarge) {
			t.Errorf("ReadFileMax of a /proc file: %v", err)
		}
	}
}

// recordingFiles serves files from memory and records the limit each
// read was given.
type recordingFiles struct {
	files map[string]string
	max   []int64
}

func (r *recordingFiles) ReadFile(name string) ([]byte, error) {
	s, ok := r.files[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	return []byte(s), nil
}

func (r *recordingFiles) ReadFileMax(name string, max int64) ([]byte, error) {
	r.max = append(r.max, max)
	b, err := r.ReadFile(name)
	if err == nil && int64(len(b)) > max {
		return nil, ErrConfigTooLarge
	}
	return b, err
}

func (r *recordingFiles) Glob(pattern string) ([]string, error) {
	var out []string
	for name := range r.files {
		if ok, _ := filepath.Match(pattern, name); ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// unboundedFiles hides ReadFileMax.
type unboundedFiles struct{ r *recordingFiles }

func (u unboundedFiles) ReadFile(name string) ([]byte, error)  { return u.r.ReadFile(name) }
func (u unboundedFiles) Glob(pattern string) ([]string, error) { return u.r.Glob(pattern) }

// TestIncludedContentNotEchoed: the errors about an included file give
// its position and a reason, never its text (include "/etc/shadow"
// showed its lines).
func TestIncludedContentNotEchoed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("shadow", "daemon:*:19000:0:99999:7:::\nroot:$y$j9T$Zk0pQhashhash:19000:0:99999:7:::\n")
	write("shadow2", "root:$y$j9T$Zk0pQ/hashhash:19000:0:99999:7:::\n")
	write("word", "hunter2\n")
	write("v1", "node true hunter2\n")
	write("number", "node 0xhunter2\n")
	write("keyword", "node #hunter2\n")
	write("prop", "node (t)hunter2=1\n")
	cases := []struct{ file, want string }{
		{"shadow", "shadow:1:1: unknown setting in the top level of an included file (is it a Sentinel configuration?)"},
		{"shadow2", "shadow2:1:18: not valid KDL: unexpected '/'"},
		{"word", "word:1:1: unknown setting in the top level of an included file"},
		{"v1", "v1:1:11: not valid KDL: unexpected bare identifier as a value, expected a quoted string (KDL v1 has no bare string values) (read as KDL v1, which the file looks like; as KDL v2 it fails earlier, at 1:6: unexpected bare true"},
		{"number", "number:1:6: not valid KDL: invalid number"},
		{"keyword", "keyword:1:6: not valid KDL: unknown keyword, expected #true"},
		{"prop", "prop:1:6: not valid KDL: unexpected type annotation before a property key"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			src := "system { }\ninclude \"" + c.file + "\"\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\n"
			_, _, err := Adapt(filepath.Join(dir, "main.kdl"), []byte(src), noEnv, OSFiles{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			for _, leak := range []string{"hunter2", "daemon", "19000", "root", "j9T"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("the error shows the file's text (%q): %v", leak, err)
				}
			}
		})
	}
	// The main file's own errors still quote it.
	_, _, err := Adapt("main.kdl", []byte("node #hunter2\n"), noEnv, OSFiles{})
	if err == nil || !strings.Contains(err.Error(), "#hunter2") {
		t.Errorf("main file: %v", err)
	}
}

// TestTargetWeights: weights are 1 to 1048576 (absent = 1), the rule of
// the API; 0 used to become 1 silently. Addresses follow the registry's
// rule (port 1-65535). Errors are at the value's position.
func TestTargetWeights(t *testing.T) {
	ups := func(targets string) string {
		return minimal + "routes { route \"a\" { upstream \"u\"; } }\nupstreams { upstream \"u\" { load-balancing \"weighted\"; " + targets + " } }\n"
	}
	bad := []struct{ name, targets, want string }{
		{"zero", `target "127.0.0.1:1" weight=0;`, `test.kdl:9:83: upstream "u": weight must be an integer between 1 and 1048576, not 0`},
		{"negative", `target "127.0.0.1:1" weight=-3;`, "weight must be an integer between 1 and 1048576, not -3"},
		{"too big", `target "127.0.0.1:1" weight=1048577;`, "not 1048577"},
		{"zero in a block", `target { address "127.0.0.1:1"; weight 0; };`, "test.kdl:9:94: weight must be between 1 and 1048576, not 0"},
		{"port zero", `target "127.0.0.1:0";`, `test.kdl:9:62: upstream "u": target address "127.0.0.1:0": the port must be a number from 1 to 65535`},
		{"port too big", `target "127.0.0.1:65536";`, `the port must be a number from 1 to 65535`},
		{"named port", `target "127.0.0.1:http";`, `the port must be a number from 1 to 65535`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if msg := adaptErr(t, ups(c.targets), noEnv); !strings.Contains(msg, c.want) {
				t.Errorf("error does not contain %q:\n%s", c.want, msg)
			}
		})
	}
	out, _ := mustAdapt(t, ups(`target "127.0.0.1:1"; target "127.0.0.1:2" weight=1048576; target "127.0.0.1:3" weight=1;`))
	if !strings.Contains(string(out), `"targets":[{"address":"127.0.0.1:1"},{"address":"127.0.0.1:2","weight":1048576},{"address":"127.0.0.1:3"}]`) {
		t.Errorf("weights: %s", out)
	}
}

// TestCaddyAdminDefault: with the control-plane API, Caddy's
// unauthenticated admin endpoint is off unless caddy-admin asks for it.
func TestCaddyAdminDefault(t *testing.T) {
	api := "admin-api { auth { token \"t\"; }; }\n"
	listeners := "listeners { listener \"a\" { address \"127.0.0.1:1\"; } }\n"
	cases := []struct{ name, src, want string }{
		{"api: off", "system { }\n" + listeners + api, `"admin":{"disabled":true}`},
		{"api, no system block", listeners + api, `"admin":{"disabled":true}`},
		{"api: explicit address", "system { caddy-admin \"localhost:2999\"; }\n" + listeners + api, `"admin":{"listen":"localhost:2999"}`},
		{"api: unix socket", "system { caddy-admin \"unix//run/sentinel/admin.sock|0600\"; }\n" + listeners + api, `"admin":{"listen":"unix//run/sentinel/admin.sock|0600"}`},
		{"api: explicit off", "system { caddy-admin \"off\"; }\n" + listeners + api, `"admin":{"disabled":true}`},
		{"no api: Caddy's default", "system { }\n" + listeners, ``},
		{"api disabled: Caddy's default", "system { }\n" + listeners + "admin-api { enabled #false; }\n", ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := Adapt("test.kdl", []byte(c.src), noEnv, OSFiles{})
			if c.name == "api, no system block" {
				if err == nil || strings.Contains(err.Error(), `"admin"`) {
					t.Fatalf("expected the missing-system error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if strings.Contains(string(out), `"admin"`) {
					t.Errorf("admin set: %s", out)
				}
				return
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("missing %s in %s", c.want, out)
			}
		})
	}
}

// TestAPITokenChecks: tokens go into the JSON as SHA-256 only; the
// checks the API made on the token are made here, without showing it.
func TestAPITokenChecks(t *testing.T) {
	env := envOf("TOKEN", "same-token-value")
	cases := []struct{ name, auth, want string }{
		{"repeated", `token "${TOKEN}"; token "same-token-value" scope="read";`, "test.kdl:8:44: admin-api token repeats the token at test.kdl:8:20"},
		{"white space", `token "two words";`, "test.kdl:8:26: admin-api token contains white space or control characters"},
		{"empty", `token "";`, "admin-api token is empty"},
		{"repeated name", `token "a" name="n"; token "b" name="n";`, `test.kdl:8:40: admin-api token name "n" is already the name of the token at test.kdl:8:20`},
		{"default name taken", `token "a" name="token-2"; token "b";`, `admin-api token name "token-2" is already`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := adaptErr(t, minimal+"admin-api { auth { "+c.auth+" }; }", env)
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not contain %q:\n%s", c.want, msg)
			}
			for _, leak := range []string{"same-token-value", "two words"} {
				if strings.Contains(msg, leak) {
					t.Errorf("the error shows the token: %s", msg)
				}
			}
		})
	}
}

// testPos is a position for diag tests.
var testPos = kdl.Position{File: "test.kdl", Line: 1, Col: 1}
