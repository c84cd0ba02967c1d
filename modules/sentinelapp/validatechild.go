package sentinelapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ValidatorEnv names the environment variable that gives the executable
// a config text is validated with (`<exe> validate --config <file>
// --adapter <name> --json`), instead of the running executable: for a
// proxy built into another program (a test binary, a Caddy built with
// xcaddy, whose validate command has no --json) that has a Sentinel
// binary beside it.
const ValidatorEnv = "SENTINEL_VALIDATOR"

const (
	// validateTimeout bounds one validation in a child process (10,000
	// routes validate in a few seconds).
	validateTimeout = 2 * time.Minute
	// validateOutputMax bounds what is read of the child's standard
	// output (its JSON report) and standard error.
	validateOutputMax = 4 << 20
	validateStderrMax = 16 << 10
)

// childReport is the JSON document `sentinel validate --json` prints.
type childReport struct {
	Valid  bool           `json:"valid"`
	Errors []childFinding `json:"errors"`
}

// childFinding is one finding of a childReport.
type childFinding struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// validateInChild validates content as the config file in a child
// process, as `caddy validate` does: provisioning the text's apps in the
// running process would claim its listeners (reloading.Replacing), bind
// probe its addresses, and open its audit spools and log writers there.
// The text is written to a private temporary file beside the config file
// (so that relative includes resolve as they would from the config
// file), removed afterwards. It returns the errors as lines
// ("file:line:col: message" where known, the temporary file's name
// replaced by the config file's); an error means the text could not be
// validated at all.
func (a *App) validateInChild(ctx context.Context, content []byte) ([]string, error) {
	exe, err := validatorExecutable()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(a.ConfigFile)
	tmp, err := os.CreateTemp(dir, ".sentinel-validate-*"+filepath.Ext(a.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("validation writes the text to a temporary file beside the config file: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	// CreateTemp makes it 0600 already; Chmod for a umask that is odd.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("writing the text to validate: %w", err)
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("writing the text to validate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("writing the text to validate: %w", err)
	}
	adapter := a.ConfigAdapter
	if adapter == "" {
		adapter = "kdl"
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "validate", "--config", name, "--adapter", adapter, "--json")
	cmd.Dir = dir
	cmd.Env = childEnv(os.Environ())
	cmd.Stdin = nil
	stdout := &capped{max: validateOutputMax}
	stderr := &capped{max: validateStderrMax}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("validating the text: %s did not finish in time: %w", filepath.Base(exe), ctx.Err())
	}
	var rep childReport
	if stdout.over || json.Unmarshal(bytes.TrimSpace(stdout.buf.Bytes()), &rep) != nil {
		msg := strings.TrimSpace(stderr.buf.String())
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		return nil, fmt.Errorf("validating the text: %s did not answer as `sentinel validate --json` does (set %s to a Sentinel binary): %s",
			filepath.Base(exe), ValidatorEnv, strings.ReplaceAll(msg, name, a.ConfigFile))
	}
	errs := a.findingLines(rep.Errors, name)
	if !rep.Valid && len(errs) == 0 {
		errs = []string{"the text is invalid"}
	}
	return errs, nil
}

// findingLines formats findings as "file:line:col: message" lines, as
// the adapter's errors are formatted in process, naming the config file
// in place of the temporary file. A finding without a position is its
// message only.
func (a *App) findingLines(fs []childFinding, tmp string) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		file := f.File
		if file == tmp {
			file = a.ConfigFile
		}
		msg := strings.ReplaceAll(f.Message, tmp, a.ConfigFile)
		switch {
		case f.Line > 0 && f.Column > 0:
			out = append(out, fmt.Sprintf("%s:%d:%d: %s", file, f.Line, f.Column, msg))
		case f.Line > 0:
			out = append(out, fmt.Sprintf("%s:%d: %s", file, f.Line, msg))
		default:
			out = append(out, msg)
		}
	}
	return out
}

// validatorExecutable returns the executable that validates: $ValidatorEnv,
// else the running one. A test binary is refused: run with the arguments
// of validate, it would run its tests.
func validatorExecutable() (string, error) {
	if exe := os.Getenv(ValidatorEnv); exe != "" {
		return exe, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the executable to validate with: %w", err)
	}
	if strings.HasSuffix(exe, ".test") || strings.HasSuffix(exe, ".test.exe") {
		return "", fmt.Errorf("this is a test binary, which cannot validate a config text in a child process: set %s to a Sentinel binary", ValidatorEnv)
	}
	return exe, nil
}

// childEnv is env without what would make the validating process take
// part in the running one's service management: systemd's notification
// socket and socket activation, and the Caddy admin address.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "CADDY_ADMIN", "SENTINEL_CONFIG":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// capped is a writer that keeps at most max bytes, and notes whether
// more was written.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.over = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}
