package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestTuneRuntime: `sentinel run` sets GOGC to defaultGCPercent (with
// this test's small live heap) unless the environment sets GOGC, and logs
// which applies; the target then follows the live heap until stopped.
func TestTuneRuntime(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	core, logs := observer.New(zap.InfoLevel)
	stop := tuneRuntime(func(string) (string, bool) { return "", false }, zap.New(core))
	if stop == nil {
		t.Fatal("no retuning")
	}
	if got := debug.SetGCPercent(defaultGCPercent); got != defaultGCPercent {
		t.Fatalf("GOGC %d, want %d", got, defaultGCPercent)
	}
	// The small live heap keeps it there.
	time.Sleep(gcRetuneEvery + 500*time.Millisecond)
	stop()
	stop()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("GOGC %d after a retuning, want %d", got, defaultGCPercent)
	}
	if s := tuneRuntime(func(k string) (string, bool) { return "150", k == "GOGC" }, zap.New(core)); s != nil {
		t.Error("retuning with GOGC set in the environment")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with GOGC set in the environment, want it untouched (100)", got)
	}
	entries := logs.All()
	if len(entries) != 2 || entries[0].ContextMap()["GOGC"] != int64(defaultGCPercent) || entries[1].ContextMap()["GOGC"] != "150" {
		t.Fatalf("logged %v", entries)
	}
}

// TestGCPercentFor: the default target up to half of gcExtraHeap of live
// heap, then falling so that the growth over GOGC 100's stays below
// gcExtraHeap / 2, and Go's 100 from gcExtraHeap on.
func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{{0, defaultGCPercent}, {4 << 20, defaultGCPercent}, {gcExtraHeap / 2, defaultGCPercent}, {gcExtraHeap * 2 / 3, 150}, {gcExtraHeap, 100}, {1 << 30, 100}} {
		got := gcPercentFor(tc.live)
		if got != tc.want {
			t.Errorf("live %d: GOGC %d, want %d", tc.live, got, tc.want)
		}
		if extra := tc.live * uint64(got-100) / 100; extra > gcExtraHeap/2 {
			t.Errorf("live %d: %d bytes over GOGC 100's growth", tc.live, extra)
		}
	}
}

// TestRunSetsMemoryLimit: `sentinel run` sets a memory limit (GOMEMLIMIT)
// derived from the container's cgroup limit, else the machine's memory,
// at the ratio AUTOMEMLIMIT says (90 % by default), and leaves a
// GOMEMLIMIT from the environment alone; it logs both, with Sentinel's
// GOGC. The test binary runs as `sentinel run` in a process of its own.
func TestRunSetsMemoryLimit(t *testing.T) {
	limit, err := memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)()
	if err != nil {
		t.Fatalf("no memory limit to derive from: %v", err)
	}
	for _, c := range []struct {
		name, env, want string
	}{
		{"from the container", "AUTOMEMLIMIT=0.5", `"msg":"GOMEMLIMIT is updated","GOMEMLIMIT":` + strconv.FormatUint(uint64(float64(limit)*0.5), 10) + `,`},
		{"from the environment", "GOMEMLIMIT=300MiB", `"msg":"GOMEMLIMIT is already set, skipping","GOMEMLIMIT":"300MiB"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
			os.WriteFile(filepath.Join(dir, "s.kdl"), []byte(`system { caddy-admin "`+admin+`"; }
listeners { listener "main" { address "`+listen+`"; }; }
routes { route "s" { builtin-handler "status"; }; }
`), 0o644)
			cmd := exec.Command(os.Args[0], "run", "--config", "s.kdl")
			cmd.Dir = dir
			cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "AUTOMEMLIMIT=") || strings.HasPrefix(kv, "GOGC=")
			}), asSentinelEnv+"=1", "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, c.env)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			var seen []string
			found := map[string]bool{}
			sc := bufio.NewScanner(stderr)
			for sc.Scan() && !(found[c.want] && found["gogc"]) {
				line := sc.Text()
				seen = append(seen, line)
				found[c.want] = found[c.want] || strings.Contains(line, c.want)
				found["gogc"] = found["gogc"] || strings.Contains(line, `"GOGC":`+strconv.Itoa(defaultGCPercent))
				if strings.Contains(line, "serving initial configuration") {
					break
				}
			}
			if !found[c.want] || !found["gogc"] {
				t.Errorf("no %s (and Sentinel's GOGC) in the log of sentinel run:\n%s", c.want, strings.Join(seen, "\n"))
			}
		})
	}
}

// TestTuneRuntimeFollowsLiveHeap: with a live heap of gcExtraHeap and
// more, the target is Go's 100; once that heap is garbage, it goes back
// to the default.
func TestTuneRuntimeFollowsLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	big := make([]byte, gcExtraHeap+(8<<20))
	for i := range big {
		big[i] = byte(i)
	}
	runtime.GC()
	stop := tuneRuntime(func(string) (string, bool) { return "", false }, zap.NewNop())
	defer stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with a live heap of %d bytes, want 100", got, len(big))
	}
	runtime.KeepAlive(big)
	big = nil
	runtime.GC()
	for deadline := time.Now().Add(5 * time.Second); ; {
		got := debug.SetGCPercent(100)
		if got == defaultGCPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d once the heap is garbage, want %d", got, defaultGCPercent)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
