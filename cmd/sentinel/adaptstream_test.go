package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// streamConfig is a configuration of a few routes with warnings.
const streamConfig = "system { worker-threads 4; }\nlisteners { listener \"a\" { address \"127.0.0.1:7\"; } }\n" +
	"routes {\n route \"h\" { builtin-handler \"health\"; matches { path \"/h\"; } }\n route \"p\" { priority 80; upstream \"u\"; matches { path-prefix \"/p\"; } }\n}\n" +
	"upstreams { upstream \"u\" { target \"127.0.0.1:9\"; health-check { interval-secs 5; } } }\n"

// TestAdaptStreamsTheAdaptersOutput: `sentinel adapt` (which writes the
// KDL adapter's output without building it whole) prints the bytes the
// registered adapter returns, the same as with --validate (built whole),
// with the warnings on stderr.
func TestAdaptStreamsTheAdaptersOutput(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.kdl"), []byte(streamConfig), 0o644)
	want, _, err := kdladapter.Adapter{}.Adapt([]byte(streamConfig), map[string]any{"filename": "s.kdl"})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, dir, "adapt", "--config", "s.kdl")
	if code != 0 || out != string(want)+"\n" {
		t.Fatalf("exit %d, stderr %q; output differs from the adapter's:\n%s\nwant:\n%s", code, errOut, out, want)
	}
	if !strings.Contains(errOut, "s.kdl:1: warning: ") {
		t.Errorf("no warning on stderr: %q", errOut)
	}
	code, whole, errOut := runCLI(t, dir, "adapt", "--config", "s.kdl", "--validate")
	if code != 0 || whole != out {
		t.Errorf("--validate: exit %d %q; output differs from the streamed one", code, errOut)
	}
}

// TestAdaptWriteErrorReported: an output that cannot be written (a full
// disk, a closed pipe) fails the command with the reason.
func TestAdaptWriteErrorReported(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.kdl"), []byte(streamConfig), 0o644)
	t.Chdir(dir)
	t.Setenv("SENTINEL_CONFIG", "")
	var errOut bytes.Buffer
	code := run([]string{"sentinel", "adapt", "--config", "s.kdl"}, &cliEnv{stdin: strings.NewReader(""), stdout: brokenWriter{}, stderr: &errOut})
	if code == 0 || !strings.Contains(errOut.String(), "writing the output: no space left") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }
