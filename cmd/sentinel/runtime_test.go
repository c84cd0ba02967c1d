package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestTuneRuntime: `sentinel run` sets GOGC to defaultGCPercent unless the
// environment sets GOGC, and logs which applies.
func TestTuneRuntime(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	core, logs := observer.New(zap.InfoLevel)
	tuneRuntime(func(string) (string, bool) { return "", false }, zap.New(core))
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("GOGC %d, want %d", got, defaultGCPercent)
	}
	tuneRuntime(func(k string) (string, bool) { return "150", k == "GOGC" }, zap.New(core))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with GOGC set in the environment, want it untouched (100)", got)
	}
	entries := logs.All()
	if len(entries) != 2 || entries[0].ContextMap()["GOGC"] != int64(defaultGCPercent) || entries[1].ContextMap()["GOGC"] != "150" {
		t.Fatalf("logged %v", entries)
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
			listen, admin := freePort(t), freePort(t)
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
