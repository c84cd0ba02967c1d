package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// options are the command-line settings.
type options struct {
	// Mode is bench, soak, chaos or lb.
	Mode string
	// Quick makes a run of seconds.
	Quick bool
	// Out is the results folder.
	Out string
	// Rounds per bench scenario (0: default).
	Rounds int
	// RunDuration is one measured bench run (0: default).
	RunDuration time.Duration
	// Duration is the soak duration (0: default).
	Duration time.Duration
	// Rate overrides the fixed-rate scenario's request rate.
	Rate float64
	// Scenarios and Contenders are comma-separated bench filters.
	Scenarios, Contenders string
	// External uses wrk and h2load when installed.
	External bool
	// Install apt-get installs missing tools (root).
	Install bool
	// Profile CPU-profiles Sentinel where it trails Caddy.
	Profile bool
	// Concurrent loads the bench contenders at the same time.
	Concurrent bool
	// Cache is where binaries are cached.
	Cache string
	// SentinelEnv are KEY=value environment variables for Sentinel only.
	SentinelEnv []string
	// SentinelAlt is a second Sentinel binary, the contender sentinel-alt.
	SentinelAlt string
	// Dir is where the module is looked up from (default ".").
	Dir string
	// bins, when set, are used instead of building (tests build once).
	bins *Binaries
	// profileAlways profiles Sentinel in every scenario (tests).
	profileAlways bool
}

// run executes one mode; progress goes to w.
func run(ctx context.Context, o options, w io.Writer) error {
	logf := func(format string, args ...any) {
		fmt.Fprintf(w, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
	root, err := ModuleRoot(cmpOr(o.Dir, "."))
	if err != nil {
		return err
	}
	if o.Install && o.Mode == "bench" {
		installMissing(ctx, logf)
	}
	cache := o.Cache
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			uc = os.TempDir()
		}
		cache = filepath.Join(uc, "sentinel-loadharness")
	}
	var bins Binaries
	if o.bins != nil {
		bins = *o.bins
	} else if bins, err = BuildBinaries(ctx, root, cache, logf); err != nil {
		return err
	}
	bins.SentinelEnv, bins.SentinelAlt = o.SentinelEnv, o.SentinelAlt
	work, err := os.MkdirTemp("", "lh-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)
	out := o.Out
	if out == "" {
		if o.Quick {
			out = filepath.Join(os.TempDir(), "sentinel-loadharness-results", time.Now().Format("2006-01-02T150405"))
		} else {
			out = filepath.Join(root, "bench", "results", time.Now().Format("2006-01-02"))
		}
	}
	header := machineHeader(ctx, o)
	switch o.Mode {
	case "bench":
		return runBench(ctx, o, bins, work, out, header, logf)
	case "soak":
		return runSoak(ctx, o, bins, work, out, header, logf)
	case "lb":
		return runLB(ctx, o, bins, work, out, header, logf)
	default:
		return runChaos(ctx, o, bins, work, out, root, header, logf)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// installMissing installs NGINX, wrk and h2load with apt-get when missing;
// failures only leave those columns out.
func installMissing(ctx context.Context, logf func(string, ...any)) {
	var pkgs []string
	for tool, pkg := range map[string]string{"nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client"} {
		if !HaveTool(tool) {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return
	}
	logf("installing %s", strings.Join(pkgs, " "))
	if err := InstallPackages(ctx, pkgs...); err != nil {
		logf("warning: %v (continuing without them)", err)
	}
}

func runBench(ctx context.Context, o options, bins Binaries, work, out, header string, logf func(string, ...any)) error {
	cfg := BenchConfig{Bins: bins, WorkDir: work, Out: out, Rounds: o.Rounds, Duration: o.RunDuration,
		Warmup: 2 * time.Second, External: o.External, Profile: o.Profile, ProfileAlways: o.profileAlways, Logf: logf,
		Contenders: splitList(o.Contenders), Concurrent: o.Concurrent}
	if o.Quick {
		cfg.Warmup = 500 * time.Millisecond
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = map[bool]int{false: 5, true: 3}[o.Quick]
	}
	if cfg.Duration == 0 {
		cfg.Duration = map[bool]time.Duration{false: 10 * time.Second, true: 2 * time.Second}[o.Quick]
	}
	want := splitList(o.Scenarios)
	if len(want) == 0 && o.Concurrent {
		want = concurrentScenarios
	}
	for _, sc := range DefaultScenarios(o.Quick) {
		if len(want) == 0 || contains(want, sc.Name) {
			if sc.Rate > 0 && o.Rate > 0 {
				sc.Desc = strings.Replace(sc.Desc, fmt.Sprintf("%.0f req/s", sc.Rate), fmt.Sprintf("%.0f req/s", o.Rate), 1)
				sc.Rate = o.Rate
			}
			cfg.Scenarios = append(cfg.Scenarios, sc)
		}
	}
	if len(cfg.Scenarios) == 0 {
		return fmt.Errorf("no scenario matches %q", o.Scenarios)
	}
	b, err := RunBench(ctx, cfg)
	if err != nil {
		return err
	}
	var extra string
	if o.Concurrent {
		extra += " -concurrent"
	}
	if o.Quick {
		extra += " -quick"
	}
	for _, kv := range o.SentinelEnv {
		extra += " -sentinel-env " + kv
	}
	if o.SentinelAlt != "" {
		extra += " -sentinel-alt " + o.SentinelAlt
	}
	cmd := fmt.Sprintf("Command: `go run ./integration/loadharness -mode bench -rounds %d -run %s%s`\n", cfg.Rounds, cfg.Duration, extra)
	if err := WriteReport(b, out, header+cmd); err != nil {
		return err
	}
	logf("results in %s", out)
	return nil
}

func runSoak(ctx context.Context, o options, bins Binaries, work, out, header string, logf func(string, ...any)) error {
	cfg := SoakConfig{Bins: bins, WorkDir: work, Duration: o.Duration, Sample: 10 * time.Second,
		ReloadEvery: 30 * time.Second, ChangeEvery: 10 * time.Second, Rate: 500, Conns: 16, Logf: logf}
	if o.Quick {
		cfg.Sample, cfg.ReloadEvery, cfg.ChangeEvery, cfg.Rate = time.Second, 2*time.Second, time.Second, 200
	}
	if cfg.Duration == 0 {
		cfg.Duration = map[bool]time.Duration{false: 3 * time.Minute, true: 10 * time.Second}[o.Quick]
	}
	r, err := RunSoak(ctx, cfg)
	if err != nil {
		return err
	}
	if err := WriteSoakReport(r, out, header); err != nil {
		return err
	}
	logf("soak: %d ok, %d failed, %d reloads, %d API changes; report in %s", r.OK, r.Fail, r.Reloads, r.Changes, filepath.Join(out, "soak.md"))
	for _, g := range r.Growth {
		logf("soak: %s %.0f -> %.0f (%+.1f%%)", g.Metric, g.Base, g.End, g.Pct())
	}
	if len(r.Failures) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(r.Failures, "; "))
	}
	return nil
}

func runChaos(ctx context.Context, o options, bins Binaries, work, out, root, header string, logf func(string, ...any)) error {
	echo, err := BuildEchoAgent(ctx, root, filepath.Dir(bins.Sentinel))
	if err != nil {
		logf("agent scenario skipped: %v", err)
	}
	cfg := ChaosConfig{Bins: bins, WorkDir: work, ModuleRoot: root, EchoAgent: echo, Hold: 5 * time.Second, Reloads: 100, Rate: 200, Logf: logf}
	if o.Quick {
		// CI machines are busy: a clean 502/503 may take longer there.
		cfg.Hold, cfg.Reloads, cfg.Rate, cfg.SlowAfter = 2*time.Second, 20, 100, 5*time.Second
	}
	outs, err := RunChaos(ctx, cfg)
	if err != nil {
		return err
	}
	ok, err := WriteChaosReport(outs, out, header)
	if err != nil {
		return err
	}
	logf("chaos report in %s", filepath.Join(out, "chaos.md"))
	if !ok {
		var failed []string
		for _, o := range outs {
			if !o.Pass && !o.Skipped {
				failed = append(failed, o.Name+": "+o.Observed)
			}
		}
		return errors.New("chaos failed: " + strings.Join(failed, "; "))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// machineHeader describes the machine and tools, for the reports.
func machineHeader(ctx context.Context, o options) string {
	first := func(name string, args ...string) string {
		b, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil && len(b) == 0 { // wrk -v exits 1 after printing its version
			return "not installed"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		return line
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, v, _ := strings.Cut(l, ":")
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("Machine: %d CPUs (`nproc`), %s, kernel %s, %s; %s; wrk: %s; h2load: %s. Date %s.\n\n",
		runtime.NumCPU(), cpu, first("uname", "-r"), runtime.Version(), first("nginx", "-v"), first("wrk", "-v"),
		first("h2load", "--version"), time.Now().UTC().Format(time.RFC3339))
}

// lbConns is the number of connections of each contender's load
// generator in the load-balancing scenario: enough to keep the proxy
// CPU-bound (a closed loop with more requests in flight than the proxy
// serves in its fast backends' latency), few enough that queueing in the
// proxy stays in milliseconds, below the slow backend's 50 ms, whatever
// the machine's speed (64 on the shared 2-core VM, three proxies loaded
// at once: 40 ms p50, which hides the slow backend).
const lbConns = 16

// runLB runs the load-balancing scenario: -rounds (default 7; 3 with
// -quick) of -run (default 10 s; 2 s with -quick).
func runLB(ctx context.Context, o options, bins Binaries, work, out, header string, logf func(string, ...any)) error {
	cfg := LBConfig{Bins: bins, WorkDir: work, Rounds: o.Rounds, Duration: o.RunDuration, Warmup: 3 * time.Second,
		Conns: lbConns, SlowLatency: 50 * time.Millisecond, External: o.External, Logf: logf}
	if cfg.Rounds == 0 {
		cfg.Rounds = map[bool]int{false: 7, true: 3}[o.Quick]
	}
	if cfg.Duration == 0 {
		cfg.Duration = map[bool]time.Duration{false: 10 * time.Second, true: 2 * time.Second}[o.Quick]
	}
	r, err := RunLB(ctx, cfg)
	if err != nil {
		return err
	}
	met, err := WriteLBReport(r, out, header)
	if err != nil {
		return err
	}
	for _, s := range r.Summaries()[1:] {
		logf("lb: %s p99 %s, %.2f × the oracle's (%.2f–%.2f), slow backend %.2f %%", s.Name, s.P99, s.Ratio, s.Min, s.Max, 100*s.SlowShare)
	}
	logf("lb: target (≤ %.1f × the oracle) met: %v; report in %s", LBTarget, met, filepath.Join(out, "lb.md"))
	return nil
}
