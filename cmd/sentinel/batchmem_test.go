package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestBatchMemoryLimit: the job's limit grows with the configuration's
// size; 90 % of a container's limit wins when lower.
func TestBatchMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		size   int
		cgroup uint64
		want   int64
	}{
		{0, 0, 128 * mib},
		{68 * mib, 0, (128 + 4*68) * mib},
		{68 * mib, 1024 * mib, (128 + 4*68) * mib},
		{68 * mib, 300 * mib, 270 * mib},
		{1 * mib, 512 * mib, 132 * mib},
	} {
		if got := batchMemoryLimit(c.size, c.cgroup); got != c.want {
			t.Errorf("batchMemoryLimit(%d, %d) = %d, want %d", c.size, c.cgroup, got, c.want)
		}
	}
}

// TestLimitBatchMemory: without GOMEMLIMIT the limit is set for the job and
// restored by undo; with it, left alone.
func TestLimitBatchMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	debug.SetMemoryLimit(math.MaxInt64)

	undo := limitBatchMemory(func(string) (string, bool) { return "", false }, 10<<20)
	if got := debug.SetMemoryLimit(-1); got == math.MaxInt64 || got > batchMemoryLimit(10<<20, 0) {
		t.Errorf("limit %d during the job, want at most %d", got, batchMemoryLimit(10<<20, 0))
	}
	undo()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d after undo, want it restored", got)
	}
	undo = limitBatchMemory(func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" }, 10<<20)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d with GOMEMLIMIT set, want it untouched", got)
	}
	undo()
}

// TestAdaptRestoresMemoryLimit: adapt and validate, run in-process, leave
// the process's memory limit as they found it.
func TestAdaptRestoresMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	prev := debug.SetMemoryLimit(-1)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.kdl"), []byte(streamConfig), 0o644)
	for _, cmd := range []string{"adapt", "validate"} {
		if code, _, errOut := runCLI(t, dir, cmd, "--config", "s.kdl"); code != 0 {
			t.Fatalf("%s: exit %d: %s", cmd, code, errOut)
		}
		if got := debug.SetMemoryLimit(-1); got != prev {
			t.Errorf("%s left the memory limit at %d, was %d", cmd, got, prev)
		}
	}
}
