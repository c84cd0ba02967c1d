package main

import (
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestExecMappings: only the executable's read-only mappings are
// released (not its data segment, other files or anonymous memory), and
// a malformed range is an error naming it.
func TestExecMappings(t *testing.T) {
	maps := `00400000-01c00000 r-xp 00000000 fe:01 123 /usr/bin/sentinel proxy
01c00000-03000000 r--p 01800000 fe:01 123 /usr/bin/sentinel proxy
03000000-03100000 rw-p 02c00000 fe:01 123 /usr/bin/sentinel proxy
03100000-03200000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 r--p 00000000 fe:01 456 /usr/lib/locale/C.utf8
7f0000100000-7f0000200000 r-xp 00000000 fe:01 123 /usr/bin/sentinel
7ffd0000000-7ffd0001000 r-xp 00000000 00:00 0 [vdso]
`
	got, err := execMappings(strings.NewReader(maps), "/usr/bin/sentinel proxy")
	if err != nil {
		t.Fatal(err)
	}
	want := []execMapping{{0x400000, 0x1c00000, "r-xp"}, {0x1c00000, 0x3000000, "r--p"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"zz-01 r-xp 0 fe:01 1 /x\n", "0400-0300 r-xp 0 fe:01 1 /x\n", "0400 r-xp 0 fe:01 1 /x\n"} {
		if _, err := execMappings(strings.NewReader(bad), "/x"); err == nil || !strings.Contains(err.Error(), strings.Fields(bad)[0]) {
			t.Errorf("%q: error %v, want one naming the range", bad, err)
		}
	}
}

// TestReleaseExecPages: the executable's resident pages are given back
// (the test binary's here), and the process runs on.
func TestReleaseExecPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	core, logs := observer.New(zap.InfoLevel)
	releaseExecPages(zap.New(core))
	entries := logs.FilterMessage("executable's pages released").All()
	if len(entries) != 1 {
		t.Fatalf("logged %v", logs.All())
	}
	f := entries[0].ContextMap()
	before, after := f["rss_file_kib_before"].(int64), f["rss_file_kib_after"].(int64)
	if errs, _ := f["errors"].([]any); len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	if before <= 0 || after >= before/2 {
		t.Errorf("RssFile %d KiB before, %d after: want less than half", before, after)
	}
	if s, err := os.ReadFile("/proc/self/status"); err != nil || rssKB(string(s), "VmRSS:") <= 0 {
		t.Errorf("status after the release: %v", err)
	}
}

// TestScheduleExecPagesRelease: released once the configuration runs
// (not before), kept with SENTINEL_EXEC_PAGES=keep, an unknown value
// warned about and released.
func TestScheduleExecPagesRelease(t *testing.T) {
	for _, tc := range []struct {
		env      string
		set      bool
		schedule bool
		warn     bool
	}{{"", false, true, false}, {"release", true, true, false}, {"keep", true, false, false}, {"off", true, true, true}} {
		core, logs := observer.New(zap.InfoLevel)
		var running atomic.Bool
		cancel := scheduleExecPagesRelease(func(k string) (string, bool) {
			return tc.env, tc.set && k == "SENTINEL_EXEC_PAGES"
		}, running.Load, zap.New(core))
		if (cancel != nil) != tc.schedule {
			t.Fatalf("%q: scheduled %v, want %v", tc.env, cancel != nil, tc.schedule)
		}
		if warned := logs.FilterLevelExact(zap.WarnLevel).Len() > 0; warned != tc.warn {
			t.Errorf("%q: warned %v, want %v", tc.env, warned, tc.warn)
		}
		if cancel == nil {
			continue
		}
		time.Sleep(3 * execPagesPoll)
		if logs.FilterMessage("executable's pages released").Len() != 0 {
			t.Fatalf("%q: released before the configuration runs", tc.env)
		}
		running.Store(true)
		for deadline := time.Now().Add(5 * time.Second); logs.FilterMessage("executable's pages released").Len() == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%q: not released once the configuration runs", tc.env)
			}
			time.Sleep(execPagesPoll)
		}
		cancel()
		cancel()
	}
	// Cancelled before the configuration runs: never released.
	core, logs := observer.New(zap.InfoLevel)
	cancel := scheduleExecPagesRelease(func(string) (string, bool) { return "", false }, func() bool { return false }, zap.New(core))
	cancel()
	time.Sleep(3 * execPagesPoll)
	if logs.FilterMessage("executable's pages released").Len() != 0 {
		t.Error("released after cancel")
	}
	if rssKB("VmRSS:\t  1234 kB\n", "VmRSS:") != 1234 || rssKB("", "VmRSS:") != -1 || rssKB("VmRSS: x kB\n", "VmRSS:") != -1 {
		t.Error("rssKB")
	}
}

// TestReleaseExecPagesForBatch: a batch command releases the executable's
// pages only for a large configuration, and never with
// SENTINEL_EXEC_PAGES=keep.
func TestReleaseExecPagesForBatch(t *testing.T) {
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k == "SENTINEL_EXEC_PAGES" && v != "" {
				return v, true
			}
			return "", false
		}
	}
	if releaseExecPagesForBatch(env(""), batchExecPagesMin-1) {
		t.Error("released for a small configuration")
	}
	if releaseExecPagesForBatch(env("keep"), batchExecPagesMin) {
		t.Error("released with SENTINEL_EXEC_PAGES=keep")
	}
	if !releaseExecPagesForBatch(env(""), batchExecPagesMin) {
		t.Error("not released for a large configuration")
	}
}
