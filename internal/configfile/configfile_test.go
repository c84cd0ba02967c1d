package configfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(kv ...string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1], true
			}
		}
		return "", false
	}
}

// TestLimit: MaxBytes by default, SENTINEL_MAX_CONFIG_MIB MiB when set,
// an error naming the variable for anything but 1 to 4096.
func TestLimit(t *testing.T) {
	if n, err := Limit(env()); err != nil || n != MaxBytes {
		t.Errorf("default: %d %v", n, err)
	}
	if n, err := Limit(env(MaxEnv, "64")); err != nil || n != 64<<20 {
		t.Errorf("64: %d %v", n, err)
	}
	for _, bad := range []string{"0", "4097", "x", "1.5"} {
		if _, err := Limit(env(MaxEnv, bad)); err == nil || !strings.Contains(err.Error(), MaxEnv) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestOSFiles: regular files only, bounded; a glob skips directories.
func TestOSFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.kdl")
	os.WriteFile(f, []byte("0123456789"), 0o644)
	os.Mkdir(filepath.Join(dir, "b.kdl"), 0o755)
	if b, err := (OSFiles{}).ReadFile(f); err != nil || string(b) != "0123456789" {
		t.Errorf("ReadFile: %q %v", b, err)
	}
	if _, err := (OSFiles{}).ReadFileMax(f, 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := (OSFiles{}).ReadFile(dir); err == nil {
		t.Error("a directory was read")
	}
	if m, err := (OSFiles{}).Glob(filepath.Join(dir, "*.kdl")); err != nil || len(m) != 1 || m[0] != f {
		t.Errorf("Glob: %v %v", m, err)
	}
	// A plain path is returned as it is (reading it tells what it is).
	if m, _ := (OSFiles{}).Glob(filepath.Join(dir, "b.kdl")); len(m) != 1 {
		t.Errorf("plain Glob: %v", m)
	}
}

// TestError: one finding is the message; several are counted and listed;
// Findings finds them through wrapping, or gives the message.
func TestError(t *testing.T) {
	one := &Error{Findings: []string{"a.kdl:1:1: x"}}
	if one.Error() != "a.kdl:1:1: x" {
		t.Error(one.Error())
	}
	two := &Error{Findings: []string{"a", "b"}}
	if two.Error() != "2 errors in the configuration:\na\nb" {
		t.Error(two.Error())
	}
	if got := Findings(fmt.Errorf("adapting: %w", two)); len(got) != 2 {
		t.Errorf("wrapped: %v", got)
	}
	if got := Findings(errors.New("plain")); len(got) != 1 || got[0] != "plain" {
		t.Errorf("plain: %v", got)
	}
}
