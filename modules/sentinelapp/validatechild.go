package sentinelapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	// validateSlots is how many validations of one config run at once
	// (each child holds a whole provisioned config); the others wait.
	validateSlots = 2
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
	tt, err := writeTextTemp(dir, filepath.Base(a.ConfigFile), content, true)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		// A read-only config folder (a Kubernetes ConfigMap volume).
		tt, err = writeTextTemp(dir, filepath.Base(a.ConfigFile), content, false)
	}
	if err != nil {
		return nil, fmt.Errorf("writing the text to validate to a temporary file: %w", err)
	}
	defer tt.remove()
	return a.runValidator(ctx, exe, tt)
}

// runValidator runs exe's validate command on tt.file in the config
// folder, and returns its errors as lines, tt's names replaced by the
// config folder's.
func (a *App) runValidator(ctx context.Context, exe string, tt *textTemp) ([]string, error) {
	name, dir := tt.file, tt.dir
	if a.run != nil && a.run.validators != nil {
		select {
		case a.run.validators <- struct{}{}:
			defer func() { <-a.run.validators }()
		case <-ctx.Done():
			return nil, fmt.Errorf("validating: waiting for the other validations: %w", ctx.Err())
		}
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
		return nil, fmt.Errorf("validating: %s did not finish in time: %w", filepath.Base(exe), ctx.Err())
	}
	var rep childReport
	if stdout.over || json.Unmarshal(bytes.TrimSpace(stdout.buf.Bytes()), &rep) != nil {
		// Its last line only (its log lines before it may quote the
		// config), bounded.
		msg := strings.TrimSpace(stderr.buf.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		return nil, fmt.Errorf("validating: %s did not answer as `sentinel validate --json` does (set %s to a Sentinel binary): %s",
			filepath.Base(exe), ValidatorEnv, tt.rename(msg, a.ConfigFile))
	}
	errs := a.findingLines(rep.Errors, tt)
	if !rep.Valid && len(errs) == 0 {
		errs = []string{"the text is invalid"}
	}
	return errs, nil
}

// findingLines formats findings as "file:line:col: message" lines, as
// the adapter's errors are formatted in process, naming the config file
// in place of the temporary file. A finding without a position is its
// message only.
func (a *App) findingLines(fs []childFinding, tt *textTemp) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		file := tt.rename(f.File, a.ConfigFile)
		msg := tt.rename(f.Message, a.ConfigFile)
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

// textTemp is a config text written to a temporary file for a child to
// validate.
type textTemp struct {
	// file is the temporary file.
	file string
	// farm is the temporary folder that holds file and a symbolic link
	// to each other entry of the config folder ("" when file is in the
	// config folder itself).
	farm, dir string
}

// writeTextTemp writes content to a private (0600) temporary file that
// includes relative to it resolve from as from the config folder dir:
// beside, a file in dir; else (dir is read-only) a file named base in a
// new temporary folder that links to each other entry of dir (includes
// that climb out of dir with ".." do not resolve there).
func writeTextTemp(dir, base string, content []byte, beside bool) (*textTemp, error) {
	tt := &textTemp{dir: dir}
	var f *os.File
	var err error
	if beside {
		f, err = os.CreateTemp(dir, ".sentinel-validate-*"+filepath.Ext(base))
	} else {
		tt.farm, err = os.MkdirTemp("", "sentinel-validate-")
		if err != nil {
			return nil, err
		}
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			tt.remove()
			return nil, rerr
		}
		for _, e := range entries {
			if e.Name() == base {
				continue
			}
			if err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(tt.farm, e.Name())); err != nil {
				tt.remove()
				return nil, err
			}
		}
		f, err = os.OpenFile(filepath.Join(tt.farm, base), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		tt.remove()
		return nil, err
	}
	tt.file = f.Name()
	// CreateTemp makes it 0600 already; Chmod for an odd umask.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(content)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tt.remove()
		return nil, err
	}
	return tt, nil
}

// remove deletes the temporary file (and folder of links).
func (tt *textTemp) remove() {
	if tt.farm != "" {
		os.RemoveAll(tt.farm)
	} else if tt.file != "" {
		os.Remove(tt.file)
	}
}

// rename replaces, in s, the temporary file's name with the config
// file's, and the folder of links with the config folder.
func (tt *textTemp) rename(s, configFile string) string {
	s = strings.ReplaceAll(s, tt.file, configFile)
	if tt.farm != "" {
		s = strings.ReplaceAll(s, tt.farm+string(filepath.Separator), tt.dir+string(filepath.Separator))
	}
	return s
}

// validateFileInChild validates the config file as it is on disk in a
// child process (GET /api/v1/config/validate), for the reasons of
// validateInChild.
func (a *App) validateFileInChild(ctx context.Context) ([]string, error) {
	exe, err := validatorExecutable()
	if err != nil {
		return nil, err
	}
	// Not removed: it is the config file.
	return a.runValidator(ctx, exe, &textTemp{file: a.ConfigFile, dir: filepath.Dir(a.ConfigFile)})
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
