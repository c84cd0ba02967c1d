package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario is one benchmark workload.
type Scenario struct {
	// Name identifies the scenario in results.
	Name string
	// Desc says what it measures.
	Desc string
	// Path is requested on every contender (/b/N answers N bytes).
	Path string
	// TLS uses the HTTPS listener with HTTP/2.
	TLS bool
	// Conns is the number of client connections.
	Conns int
	// Streams is the number of concurrent streams per connection (HTTP/2).
	Streams int
	// Rate > 0 makes a fixed-rate (open-loop) run with the Go generator.
	Rate float64
}

// DefaultScenarios returns the benchmark scenarios; quick ones are lighter.
func DefaultScenarios(quick bool) []Scenario {
	rate, conns1k := 2000.0, 1000
	if quick {
		rate = 500
	}
	return []Scenario{
		{Name: "h1-small", Desc: "HTTP/1.1 keep-alive, 128 B responses, 64 connections, max throughput", Path: "/b/128", Conns: 64},
		{Name: "h2-tls", Desc: "HTTP/2 over TLS, 128 B responses, 8 connections x 16 streams, max throughput", Path: "/b/128", TLS: true, Conns: 8, Streams: 16},
		{Name: "h1-64k", Desc: "HTTP/1.1 keep-alive, 64 KiB responses, 32 connections, max throughput", Path: "/b/65536", Conns: 32},
		{Name: "h1-1k-conns", Desc: "HTTP/1.1 keep-alive, 128 B responses, 1,000 connections, max throughput", Path: "/b/128", Conns: conns1k},
		{Name: "fixed-rate", Desc: fmt.Sprintf("HTTP/1.1, 128 B responses, %.0f req/s open loop (latency from the intended send time), 64 connections", rate), Path: "/b/128", Conns: 64, Rate: rate},
	}
}

// concurrentScenarios are the scenarios of -concurrent when none is named:
// the ones of the CPU-per-request targets against stock Caddy.
var concurrentScenarios = []string{"h1-small", "h2-tls", "h1-64k"}

// BenchConfig configures a benchmark.
type BenchConfig struct {
	// Bins are the proxy binaries.
	Bins Binaries
	// WorkDir holds configs and logs of the contenders.
	WorkDir string
	// Out is the results folder (results.md, results.csv, PNGs, profiles).
	Out string
	// Rounds is the number of rounds per scenario (contenders alternate,
	// or all run at once when Concurrent).
	Rounds int
	// Concurrent loads every contender at the same time in each round,
	// each with its own load generator, so that the machine's noise is
	// the same for all of them; the ratios are then best read paired by
	// round.
	Concurrent bool
	// Duration of one measured run.
	Duration time.Duration
	// Warmup is an unmeasured run per contender and scenario.
	Warmup time.Duration
	// Scenarios to run.
	Scenarios []Scenario
	// Contenders are the names to run: direct, caddy, caddy-control,
	// sentinel, nginx.
	Contenders []string
	// External uses wrk and h2load when installed.
	External bool
	// Profile takes a CPU profile of Sentinel where it trails Caddy.
	Profile bool
	// ProfileAlways profiles Sentinel in the first scenario whatever the
	// results (tests).
	ProfileAlways bool
	// Logf reports progress.
	Logf func(string, ...any)
}

// Run is one measured run of one contender.
type Run struct {
	// Scenario and Contender name the run.
	Scenario, Contender string
	// Round is the round number from 0.
	Round int
	// Result is the load generator's result.
	Result LoadResult
	// CPU is the server's CPU time during the run (0 for direct).
	CPU time.Duration
	// PeakRSS is the server's VmHWM after the run.
	PeakRSS int64
	// PeakPrivate is the highest private memory (RSS less the file-backed
	// and shared pages, Usage.FileRSS: heap, stacks) seen during the run,
	// sampled every privateSampleEvery and at its end: what the load
	// drives, without the executable's pages (which Sentinel releases
	// after startup, so VmHWM less the pages resident at the end would
	// count them).
	PeakPrivate int64
}

// Bench is the outcome of a benchmark.
type Bench struct {
	// Scenarios that ran.
	Scenarios []Scenario
	// Contenders that ran, in order.
	Contenders []string
	// Runs are all measured runs.
	Runs []Run
	// Profiles maps a scenario to the top of a Sentinel CPU profile.
	Profiles map[string]string
	// Notes are remarks (tools missing, skipped contenders).
	Notes []string
	// Concurrent is set when the contenders were loaded at the same time.
	Concurrent bool
}

// contenderKind maps a contender name to its kind.
func contenderKind(name string) string {
	switch name {
	case "caddy", "caddy-control":
		return KindCaddy
	case "sentinel", "sentinel-alt":
		return KindSentinel
	case "nginx":
		return KindNginx
	default:
		return KindDirect
	}
}

// RunBench runs every scenario: one backend, the contenders started fresh
// per scenario (so peak RSS is per scenario), rounds in rotating order.
func RunBench(ctx context.Context, cfg BenchConfig) (*Bench, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("results dir: %w", err)
	}
	if _, err := RaiseFileLimit(); err != nil {
		logf("warning: %v", err)
	}
	res := &Bench{Scenarios: cfg.Scenarios, Profiles: map[string]string{}, Concurrent: cfg.Concurrent}
	for _, n := range cfg.Contenders {
		if n == "nginx" && !HaveTool("nginx") {
			res.Notes = append(res.Notes, "nginx is not installed: NGINX columns are empty")
			continue
		}
		if n == "sentinel-alt" && cfg.Bins.SentinelAlt == "" {
			res.Notes = append(res.Notes, "sentinel-alt needs -sentinel-alt BINARY: left out")
			continue
		}
		res.Contenders = append(res.Contenders, n)
	}
	if cfg.External && !HaveTool("wrk") {
		res.Notes = append(res.Notes, "wrk is not installed: HTTP/1.1 runs use the Go load generator")
	}
	if cfg.External && !HaveTool("h2load") {
		res.Notes = append(res.Notes, "h2load is not installed: HTTP/2 runs use the Go load generator")
	}
	be, err := StartBackend("", BackendOptions{BodySize: 128})
	if err != nil {
		return nil, err
	}
	defer be.Close()
	cert, key, err := WriteCert(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	pc := ProxyConfig{Upstreams: []string{be.Addr}, CertFile: cert, KeyFile: key}
	for _, sc := range cfg.Scenarios {
		if err := runScenario(ctx, cfg, sc, pc, res, logf); err != nil {
			return res, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
	}
	return res, nil
}

func runScenario(ctx context.Context, cfg BenchConfig, sc Scenario, pc ProxyConfig, res *Bench, logf func(string, ...any)) error {
	var cs []*Contender
	defer func() {
		for _, c := range cs {
			c.Stop()
		}
	}()
	for _, n := range res.Contenders {
		if sc.TLS && n == "direct" {
			continue // the backend speaks plain HTTP/1.1 only
		}
		c, err := NewContender(n, contenderKind(n), filepath.Join(cfg.WorkDir, sc.Name))
		if err != nil {
			return err
		}
		if err := c.Start(cfg.Bins, pc); err != nil {
			return fmt.Errorf("start %s: %w", n, err)
		}
		cs = append(cs, c)
	}
	if cfg.Concurrent {
		if _, err := measureAll(ctx, cfg, sc, cs, cfg.Warmup, false); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	} else {
		for _, c := range cs {
			if _, err := measure(ctx, cfg, sc, c, cfg.Warmup, false); err != nil {
				return fmt.Errorf("warm-up %s: %w", c.Name, err)
			}
		}
	}
	logRun := func(run Run) {
		logf("%-12s %-14s round %d: %8.0f req/s p50 %-9s p99 %-9s err %d cpu/10k %.3fs (%s)", sc.Name, run.Contender, run.Round,
			run.Result.RPS(), run.Result.Latency[50], run.Result.Latency[99], run.Result.Errors, cpuPer10k(run), run.Result.Tool)
	}
	for r := range cfg.Rounds {
		if cfg.Concurrent {
			runs, err := measureAll(ctx, cfg, sc, cs, cfg.Duration, cfg.External)
			if err != nil {
				return fmt.Errorf("round %d: %w", r, err)
			}
			for _, run := range runs {
				run.Round = r
				res.Runs = append(res.Runs, run)
				logRun(run)
			}
			continue
		}
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			run, err := measure(ctx, cfg, sc, c, cfg.Duration, cfg.External)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", c.Name, r, err)
			}
			run.Round = r
			res.Runs = append(res.Runs, run)
			logRun(run)
		}
	}
	if cfg.Profile {
		s := Summarize(res, sc.Name)
		sen, cad := s["sentinel"], s["caddy"]
		if (cfg.ProfileAlways && len(res.Profiles) == 0) || (sen != nil && cad != nil && (sen.RPS < 0.97*cad.RPS || float64(sen.P99) > 1.05*float64(cad.P99))) {
			for _, c := range cs {
				if c.Name == "sentinel" {
					top, err := profile(ctx, cfg, sc, c)
					if err != nil {
						res.Notes = append(res.Notes, fmt.Sprintf("profile of %s failed: %v", sc.Name, err))
					} else {
						res.Profiles[sc.Name] = top
					}
				}
			}
		}
	}
	return nil
}

// measure runs the scenario's load against c, with the server's CPU and
// peak RSS.
func measure(ctx context.Context, cfg BenchConfig, sc Scenario, c *Contender, d time.Duration, external bool) (Run, error) {
	scheme := "http"
	if sc.TLS {
		scheme = "https"
	}
	spec := LoadSpec{URL: scheme + "://" + c.Addr(sc.TLS) + sc.Path, Conns: sc.Conns, Streams: sc.Streams,
		HTTP2: sc.TLS, Duration: d, Rate: sc.Rate}
	var before Usage
	if c.Proc != nil {
		var err error
		if before, err = ReadUsage(c.Proc.PID()); err != nil {
			return Run{}, err
		}
	}
	var sampled atomic.Int64
	if c.Proc != nil {
		stop := samplePrivate(c.Proc.PID(), &sampled)
		defer stop()
	}
	var lr LoadResult
	var err error
	switch {
	case external && sc.Rate == 0 && !sc.TLS && HaveTool("wrk"):
		lr, err = RunWrk(ctx, c.Dir, spec)
	case external && sc.Rate == 0 && sc.TLS && HaveTool("h2load"):
		lr, err = RunH2load(ctx, c.Dir, spec)
	default:
		lr, err = RunGo(ctx, spec)
	}
	if err != nil {
		return Run{}, err
	}
	run := Run{Scenario: sc.Name, Contender: c.Name, Result: lr}
	if c.Proc != nil {
		after, err := ReadUsage(c.Proc.PID())
		if err != nil {
			return Run{}, err
		}
		run.CPU, run.PeakRSS = after.CPU-before.CPU, after.PeakRSS
		run.PeakPrivate = max(sampled.Load(), after.RSS-after.FileRSS)
	}
	return run, nil
}

// privateSampleEvery is how often samplePrivate reads a server's memory.
const privateSampleEvery = 50 * time.Millisecond

// samplePrivate records in peak the highest private memory (VmRSS less
// RssFile and RssShmem) of pid and its children until stop is called.
func samplePrivate(pid int, peak *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(privateSampleEvery)
		defer t.Stop()
		for {
			if u, err := ReadUsage(pid); err == nil && u.RSS-u.FileRSS > peak.Load() {
				peak.Store(u.RSS - u.FileRSS)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// measureAll runs the scenario's load against every contender at the same
// time (one load generator each) and returns their runs in the order of cs.
func measureAll(ctx context.Context, cfg BenchConfig, sc Scenario, cs []*Contender, d time.Duration, external bool) ([]Run, error) {
	runs := make([]Run, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i], errs[i] = measure(ctx, cfg, sc, c, d, external)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", c.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	return runs, errors.Join(errs...)
}

// cpuPer10k returns the server's CPU seconds per 10,000 requests.
func cpuPer10k(r Run) float64 {
	if r.Result.Requests == 0 {
		return 0
	}
	return r.CPU.Seconds() * 10000 / float64(r.Result.Requests)
}

// profile takes a CPU profile of c under the scenario's load through
// Caddy's admin /debug/pprof/profile and returns `go tool pprof -top`.
func profile(ctx context.Context, cfg BenchConfig, sc Scenario, c *Contender) (string, error) {
	secs := max(int(cfg.Duration/time.Second)-1, 1)
	type got struct {
		b   []byte
		err error
	}
	ch := make(chan got, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.AdminAddr, secs))
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("pprof: %s", resp.Status)
		}
		ch <- got{b, err}
	}()
	if _, err := measure(ctx, cfg, sc, c, cfg.Duration, cfg.External); err != nil {
		return "", err
	}
	g := <-ch
	if g.err != nil {
		return "", g.err
	}
	pf := filepath.Join(cfg.Out, "profile-"+sc.Name+".pb.gz")
	if err := os.WriteFile(pf, g.b, 0o644); err != nil {
		return "", fmt.Errorf("write profile: %w", err)
	}
	// The 25 heaviest functions, then Sentinel's own functions with the
	// Caddy functions they wrap: the difference of their cumulative costs
	// is what the Sentinel modules add.
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", cfg.Bins.Sentinel, pf).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, tail(top))
	}
	all, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=5000", cfg.Bins.Sentinel, pf).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, tail(all))
	}
	out := append([]byte("$ go tool pprof -top -nodecount=25\n"), top...)
	out = append(out, "\nSentinel's functions, and the Caddy functions they wrap (flat, flat%, sum%, cum, cum%):\n"...)
	for _, line := range strings.Split(string(all), "\n") {
		if strings.Contains(line, "sentinel-proxy/sentinel") || strings.HasSuffix(line, "reverseproxy.(*Handler).ServeHTTP") ||
			strings.HasSuffix(line, "reverseproxy.(*HTTPTransport).RoundTrip") {
			out = append(out, line+"\n"...)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "profile-"+sc.Name+".txt"), out, 0o644); err != nil {
		return "", fmt.Errorf("write profile text: %w", err)
	}
	return string(out), nil
}

// Summary is the median over the rounds of one contender in one scenario.
type Summary struct {
	// Tool is the load generator.
	Tool string
	// Rounds counts the runs.
	Rounds int
	// RPS is the median throughput.
	RPS float64
	// P50, P99 and P999 are median latencies at those percentiles.
	P50, P99, P999 time.Duration
	// Latency is the median latency at each of Quantiles.
	Latency map[float64]time.Duration
	// CPUPer10k is the median server CPU seconds per 10,000 requests.
	CPUPer10k float64
	// PeakRSS is the largest VmHWM seen, in bytes.
	PeakRSS int64
	// PeakPrivate is the largest Run.PeakPrivate seen, in bytes.
	PeakPrivate int64
	// Errors sums failed requests over the rounds.
	Errors int64
}

// Summarize returns the per-contender summaries of a scenario.
func Summarize(b *Bench, scenario string) map[string]*Summary {
	by := map[string][]Run{}
	for _, r := range b.Runs {
		if r.Scenario == scenario {
			by[r.Contender] = append(by[r.Contender], r)
		}
	}
	out := map[string]*Summary{}
	for name, runs := range by {
		s := &Summary{Tool: runs[0].Result.Tool, Rounds: len(runs), Latency: map[float64]time.Duration{}}
		var rps, cpu []float64
		for _, r := range runs {
			rps = append(rps, r.Result.RPS())
			cpu = append(cpu, cpuPer10k(r))
			s.PeakRSS = max(s.PeakRSS, r.PeakRSS)
			s.PeakPrivate = max(s.PeakPrivate, r.PeakPrivate)
			s.Errors += r.Result.Errors
		}
		for _, q := range Quantiles {
			var v []float64
			for _, r := range runs {
				v = append(v, float64(r.Result.Latency[q]))
			}
			s.Latency[q] = time.Duration(median(v))
		}
		s.RPS, s.CPUPer10k = median(rps), median(cpu)
		s.P50, s.P99, s.P999 = s.Latency[50], s.Latency[99], s.Latency[99.9]
		out[name] = s
	}
	return out
}

// median returns the median of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
