package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestBatchMemoryLimit: the job's limit (adapt) grows with the
// configuration's size; 90 % of a container's limit wins when lower, and
// is the only one of validate.
func TestBatchMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		size     int
		cgroup   uint64
		jobSized bool
		want     int64
		ok       bool
	}{
		{0, 0, true, 128 * mib, true},
		{68 * mib, 0, true, (128 + 3*68) * mib, true},
		{68 * mib, 1024 * mib, true, (128 + 3*68) * mib, true},
		{68 * mib, 300 * mib, true, 270 * mib, true},
		{1 * mib, 512 * mib, true, 131 * mib, true},
		{68 * mib, 0, false, 0, false},
		{68 * mib, 1000 * mib, false, 900 * mib, true},
	} {
		if got, ok := batchMemoryLimit(c.size, c.cgroup, c.jobSized); got != c.want || ok != c.ok {
			t.Errorf("batchMemoryLimit(%d, %d, %v) = %d, %v; want %d, %v", c.size, c.cgroup, c.jobSized, got, ok, c.want, c.ok)
		}
	}
}

// TestLimitBatchMemory: without GOMEMLIMIT the limit is set for the job and
// restored by undo; with it, left alone.
func TestLimitBatchMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	debug.SetMemoryLimit(math.MaxInt64)

	undo := limitBatchMemory(func(string) (string, bool) { return "", false }, 10<<20, true)
	if got, want := debug.SetMemoryLimit(-1), int64(128<<20+40<<20); got == math.MaxInt64 || got > want {
		t.Errorf("limit %d during the job, want at most %d", got, want)
	}
	undo()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d after undo, want it restored", got)
	}
	undo = limitBatchMemory(func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" }, 10<<20, true)
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
