package testutil

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// exclusive is this process's hold on the machine-wide lock: taken once,
// shared by nested callers (a test and the helpers it calls), released
// when the last of them ends.
var exclusive struct {
	sync.Mutex
	holders int
	f       *os.File
}

// Exclusive makes the calling test the only one of its kind running on
// the machine until it ends: tests that measure timing or load (traffic
// shifting away from a slow backend, the load harness) take it, so that
// `go test ./...`, which runs packages in parallel, never runs two of them
// at once on a small CI machine. It is an flock(2) on a file in the
// temporary directory, so it serialises separate test processes; within
// one process it is re-entrant (a test and a helper it calls may both
// take it).
func Exclusive(tb testing.TB) {
	tb.Helper()
	exclusive.Lock()
	defer exclusive.Unlock()
	if exclusive.holders == 0 {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "sentinel-exclusive-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			tb.Fatalf("exclusive test lock: %v", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			tb.Fatalf("exclusive test lock: %v", err)
		}
		exclusive.f = f
	}
	exclusive.holders++
	tb.Cleanup(func() {
		exclusive.Lock()
		defer exclusive.Unlock()
		exclusive.holders--
		if exclusive.holders == 0 {
			_ = syscall.Flock(int(exclusive.f.Fd()), syscall.LOCK_UN)
			exclusive.f.Close()
			exclusive.f = nil
		}
	})
}
