package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Exclusive makes the calling test the only one of its kind running on
// the machine until it ends: tests that measure timing or load (traffic
// shifting away from a slow backend, the load harness) take it, so that
// `go test ./...`, which runs packages in parallel, never runs two of them
// at once on a small CI machine. It is an flock(2) on a file in the
// temporary directory, so it also serialises separate test processes.
func Exclusive(tb testing.TB) {
	tb.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "sentinel-exclusive-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatalf("exclusive test lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		tb.Fatalf("exclusive test lock: %v", err)
	}
	tb.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
