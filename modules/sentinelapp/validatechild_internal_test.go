package sentinelapp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteTextTempReadOnlyFolder: with the config folder read-only, the
// text is written to a new folder that links to the config folder's other
// entries (so that relative includes resolve to the same files), named
// like the config file, private; names in the child's findings are
// mapped back, and removing it leaves the config folder intact.
func TestWriteTextTempReadOnlyFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sentinel.kdl"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dir, "routes.kdl"), []byte("routes"), 0o644)
	tt, err := writeTextTemp(dir, "sentinel.kdl", []byte("new"), false)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(tt.file) != "sentinel.kdl" || filepath.Dir(tt.file) == dir {
		t.Fatalf("temporary file %s", tt.file)
	}
	if b, _ := os.ReadFile(tt.file); string(b) != "new" {
		t.Errorf("text %q", b)
	}
	if fi, _ := os.Stat(tt.file); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(tt.file), "routes.kdl")); string(b) != "routes" {
		t.Errorf("include beside it reads %q", b)
	}
	cfg := filepath.Join(dir, "sentinel.kdl")
	got := tt.rename(tt.file+":1:2: x; "+filepath.Join(tt.farm, "routes.kdl")+":3:4: y", cfg)
	if want := cfg + ":1:2: x; " + filepath.Join(dir, "routes.kdl") + ":3:4: y"; got != want {
		t.Errorf("renamed %q, want %q", got, want)
	}
	tt.remove()
	if _, err := os.Stat(tt.farm); !os.IsNotExist(err) {
		t.Errorf("folder of links left: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "routes.kdl")); string(b) != "routes" {
		t.Error("removing the links removed an included file")
	}
	if b, _ := os.ReadFile(cfg); string(b) != "old" {
		t.Error("the config file changed")
	}

	// Beside: a hidden file in the config folder, removed.
	tt, err = writeTextTemp(dir, "sentinel.kdl", []byte("new"), true)
	if err != nil || filepath.Dir(tt.file) != dir || tt.farm != "" {
		t.Fatalf("beside: %v %+v", err, tt)
	}
	tt.remove()
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left in the config folder: %v", entries)
	}
}

// TestChildEnv drops what would tie the child to the service manager or
// the running process's config.
func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "NOTIFY_SOCKET=/run/x", "LISTEN_FDS=3", "LISTEN_PID=1", "CADDY_ADMIN=:1", "SENTINEL_CONFIG=/x", "MY_SECRET=s"})
	if len(got) != 2 || got[0] != "PATH=/bin" || got[1] != "MY_SECRET=s" {
		t.Errorf("child env %v", got)
	}
}

// TestCapped keeps the first max bytes and notes the rest.
func TestCapped(t *testing.T) {
	c := &capped{max: 4}
	c.Write([]byte("ab"))
	c.Write([]byte("cdef"))
	if c.buf.String() != "abcd" || !c.over {
		t.Errorf("%q %v", c.buf.String(), c.over)
	}
}

// TestValidatorExecutable: $SENTINEL_VALIDATOR wins; a test binary is
// refused rather than run with validate's arguments.
func TestValidatorExecutable(t *testing.T) {
	t.Setenv(ValidatorEnv, "/opt/sentinel")
	if exe, err := validatorExecutable(); err != nil || exe != "/opt/sentinel" {
		t.Errorf("%q %v", exe, err)
	}
	t.Setenv(ValidatorEnv, "")
	if _, err := validatorExecutable(); err == nil {
		t.Error("a test binary was accepted as the validator")
	}
}

// TestValidateInChildKilled: a child that does not finish is killed when
// the context ends, the temporary file removed.
func TestValidateInChildKilled(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(t.TempDir(), "slow")
	os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755)
	t.Setenv(ValidatorEnv, script)
	cfg := filepath.Join(dir, "sentinel.kdl")
	os.WriteFile(cfg, []byte("system { }\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := (&App{ConfigFile: cfg}).validateInChild(ctx, []byte("system { }\n"))
	if err == nil || !strings.Contains(err.Error(), "did not finish in time") {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left in the config folder: %v", entries)
	}
}

// TestValidateInChildWaitsForASlot: with every slot taken, a validation
// waits, and gives up when its context ends, without running a child.
func TestValidateInChildWaitsForASlot(t *testing.T) {
	t.Setenv(ValidatorEnv, "/bin/false")
	cfg := filepath.Join(t.TempDir(), "sentinel.kdl")
	a := &App{ConfigFile: cfg, run: &running{validators: make(chan struct{}, 1)}}
	a.run.validators <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.validateInChild(ctx, []byte("system { }\n")); err == nil || !strings.Contains(err.Error(), "waiting for the other validations") {
		t.Errorf("err = %v", err)
	}
	<-a.run.validators
	// Free: /bin/false runs, and does not answer as sentinel validate.
	if _, err := a.validateInChild(context.Background(), []byte("system { }\n")); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("err = %v", err)
	}
	if len(a.run.validators) != 0 {
		t.Error("the slot was not given back")
	}
}
