package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ChaosConfig configures the chaos scenarios.
type ChaosConfig struct {
	// Bins are the proxy binaries.
	Bins Binaries
	// WorkDir holds configs and logs.
	WorkDir string
	// ModuleRoot is the repository (for the agents scenario's example).
	ModuleRoot string
	// EchoAgent is the built examples/agents/echo ("" skips the agent
	// scenario).
	EchoAgent string
	// Hold is how long each fault lasts.
	Hold time.Duration
	// Reloads is the number of reloads of the reload storm.
	Reloads int
	// Rate is the constant request rate during the scenarios.
	Rate float64
	// SlowAfter is the longest an answer may take while every backend is
	// down (0: 2 s).
	SlowAfter time.Duration
	// Logf reports progress.
	Logf func(string, ...any)
}

// ChaosOutcome is the verdict of one chaos scenario.
type ChaosOutcome struct {
	// Name of the scenario.
	Name string
	// Expect is the expected outcome.
	Expect string
	// Observed is what happened.
	Observed string
	// Pass is the verdict.
	Pass bool
	// Skipped scenarios did not run (Observed says why).
	Skipped bool
}

// snapshot is a copy of live counters, to take differences.
type snapshot struct {
	ok, fail, slow int64
	status         map[int]int64
}

func snap(c *Counters) snapshot {
	return snapshot{ok: c.OK.Load(), fail: c.Fail.Load(), slow: c.Slow.Load(), status: c.Status()}
}

// since returns the counts from s to now.
func (s snapshot) since(c *Counters) snapshot {
	now := snap(c)
	d := snapshot{ok: now.ok - s.ok, fail: now.fail - s.fail, slow: now.slow - s.slow, status: map[int]int64{}}
	for k, v := range now.status {
		if v-s.status[k] != 0 {
			d.status[k] = v - s.status[k]
		}
	}
	return d
}

// chaosRun is the state shared by the scenarios.
type chaosRun struct {
	cfg  ChaosConfig
	c    *Contender
	pc   ProxyConfig
	bes  []*Backend
	live *Counters
	logf func(string, ...any)
}

// RunChaos starts Sentinel (retries on other targets and on 5xx, active
// and passive health checks) over three backends under constant load and
// runs each fault scenario in turn, asserting its expected outcome.
func RunChaos(ctx context.Context, cfg ChaosConfig) ([]ChaosOutcome, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !SetMigrateReq() {
		logf("warning: net.ipv4.tcp_migrate_req is not 1 (needs root, Linux >= 5.14)")
	}
	if cfg.SlowAfter == 0 {
		cfg.SlowAfter = 2 * time.Second
	}
	r := &chaosRun{cfg: cfg, live: &Counters{SlowAfter: cfg.SlowAfter}, logf: logf}
	defer func() {
		for _, b := range r.bes {
			b.Close()
		}
	}()
	for range 3 {
		b, err := StartBackend("", BackendOptions{BodySize: 256})
		if err != nil {
			return nil, err
		}
		r.bes = append(r.bes, b)
	}
	cert, key, err := WriteCert(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	if r.c, err = NewContender("sentinel-chaos", KindSentinel, cfg.WorkDir); err != nil {
		return nil, err
	}
	r.pc = ProxyConfig{Upstreams: []string{r.bes[0].Addr, r.bes[1].Addr, r.bes[2].Addr}, CertFile: cert, KeyFile: key,
		MaxAttempts: 3, RetryStatuses: []int{500, 502, 503}, HealthCheck: true, Breaker: true}
	if err := r.c.Start(cfg.Bins, r.pc); err != nil {
		return nil, err
	}
	defer r.c.Stop()

	lctx, cancel := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		_, _ = RunGo(lctx, LoadSpec{URL: "http://" + r.c.HTTPAddr + "/", Conns: 16, Duration: time.Hour, Rate: cfg.Rate,
			Timeout: 10 * time.Second, Live: r.live})
	}()
	defer func() { cancel(); <-loadDone }()

	if err := r.settle(ctx, 20*time.Second); err != nil {
		return nil, fmt.Errorf("before the scenarios: %w", err)
	}
	var out []ChaosOutcome
	for _, sc := range []func(context.Context) ChaosOutcome{r.crashReturn, r.fiveHundreds, r.allDown, r.reloadStorm, r.agentKilled} {
		o := sc(ctx)
		logf("chaos %-22s pass=%v skipped=%v: %s", o.Name, o.Pass, o.Skipped, o.Observed)
		out = append(out, o)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if err := r.settle(ctx, 30*time.Second); err != nil {
			return out, fmt.Errorf("after %s: %w", o.Name, err)
		}
	}
	return out, nil
}

// settle waits for one second without a failed request and with
// successes.
func (r *chaosRun) settle(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s := snap(r.live)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		d := s.since(r.live)
		if d.fail == 0 && d.ok > 0 {
			return nil
		}
	}
	return fmt.Errorf("requests still failing after %s (last error: %s)", limit, r.live.LastError())
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// crashReturn: one backend crashes and comes back.
func (r *chaosRun) crashReturn(ctx context.Context) ChaosOutcome {
	o := ChaosOutcome{Name: "backend-crash-return",
		Expect: "no failed request while one of three backends is down (retries, health check); the backend gets traffic again within 10 s of its return"}
	b := r.bes[0]
	s := snap(r.live)
	b.Crash()
	sleep(ctx, r.cfg.Hold)
	if err := b.Start(); err != nil {
		o.Observed = err.Error()
		return o
	}
	down := s.since(r.live)
	hits := b.Hits()
	back := time.Duration(-1)
	t0 := time.Now()
	for time.Since(t0) < 10*time.Second && ctx.Err() == nil {
		if b.Hits() > hits {
			back = time.Since(t0)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	o.Observed = fmt.Sprintf("while down: %d ok, %d failed (%v); backend traffic again after %s", down.ok, down.fail, down.status, back.Round(time.Millisecond))
	if back < 0 {
		o.Observed = fmt.Sprintf("while down: %d ok, %d failed (%v); backend got no traffic within 10 s of its return", down.ok, down.fail, down.status)
	}
	o.Pass = down.fail == 0 && down.ok > 0 && back >= 0
	return o
}

// fiveHundreds: one backend answers 500 to everything.
func (r *chaosRun) fiveHundreds(ctx context.Context) ChaosOutcome {
	o := ChaosOutcome{Name: "backend-5xx",
		Expect: "a backend answering 500: clients see no 5xx (retried on another target), and the passive health check (3 failures) sends the backend well under its 1/3 share"}
	b := r.bes[1]
	s := snap(r.live)
	h0 := b.Hits()
	b.SetErrorRate(1)
	sleep(ctx, r.cfg.Hold)
	b.SetErrorRate(0)
	d := s.since(r.live)
	hits := b.Hits() - h0
	share := float64(hits) / float64(max(d.ok+d.fail, 1))
	o.Observed = fmt.Sprintf("%d ok, %d failed (%v); the failing backend got %d requests (%.0f%% of client requests)", d.ok, d.fail, d.status, hits, share*100)
	o.Pass = d.fail == 0 && d.ok > 0 && share < 1.0/6
	return o
}

// allDown: every backend is down, then returns.
func (r *chaosRun) allDown(ctx context.Context) ChaosOutcome {
	o := ChaosOutcome{Name: "all-backends-down",
		Expect: fmt.Sprintf("every answer a 502 or 503 within %s (no hang, no reset); requests succeed again within 10 s of the backends' return", r.cfg.SlowAfter)}
	s := snap(r.live)
	for _, b := range r.bes {
		b.Crash()
	}
	sleep(ctx, r.cfg.Hold)
	d := s.since(r.live)
	for _, b := range r.bes {
		if err := b.Start(); err != nil {
			o.Observed = err.Error()
			return o
		}
	}
	t0 := time.Now()
	err := r.settle(ctx, 10*time.Second)
	rec := time.Since(t0)
	clean := d.status[502] + d.status[503]
	o.Observed = fmt.Sprintf("while down: %d answers (%v), %d slower than %s; recovered in %s", d.ok+d.fail, d.status, d.slow, r.cfg.SlowAfter, rec.Round(100*time.Millisecond))
	if err != nil {
		o.Observed += "; " + err.Error()
	}
	// Requests in flight when the backends went down are retried and may
	// still succeed: every failure must be a clean 502 or 503.
	o.Pass = clean > 0 && d.fail == clean && d.slow == 0 && err == nil
	return o
}

// reloadStorm: many reloads under load.
func (r *chaosRun) reloadStorm(ctx context.Context) ChaosOutcome {
	o := ChaosOutcome{Name: "reload-storm",
		Expect: fmt.Sprintf("%d config reloads (POST /load) under load: zero failed requests", r.cfg.Reloads)}
	s := snap(r.live)
	t0 := time.Now()
	var errs []string
	for i := 0; i < r.cfg.Reloads && ctx.Err() == nil; i++ {
		r.pc.Variant++
		if err := r.c.WriteConfig(r.pc); err != nil {
			errs = append(errs, err.Error())
			break
		}
		if err := LoadConfig(r.c); err != nil {
			errs = append(errs, err.Error())
		}
		sleep(ctx, 50*time.Millisecond) // spread the reloads over the load
	}
	took := time.Since(t0)
	sleep(ctx, time.Second) // requests in flight at the last reload finish
	d := s.since(r.live)
	o.Observed = fmt.Sprintf("%d reloads in %s (%d failed reloads); %d ok, %d failed requests (%v)", r.cfg.Reloads, took.Round(time.Millisecond), len(errs), d.ok, d.fail, d.status)
	if len(errs) > 0 {
		o.Observed += "; first reload error: " + errs[0]
	}
	o.Pass = len(errs) == 0 && d.fail == 0 && d.ok > 0
	return o
}

// agentHits sums the requests that went through the echo agent.
func (r *chaosRun) agentHits() int64 {
	var n int64
	for _, b := range r.bes {
		n += b.AgentHits()
	}
	return n
}

// waitAgent waits until requests go through the agent again.
func (r *chaosRun) waitAgent(ctx context.Context, limit time.Duration) (time.Duration, bool) {
	h, t0 := r.agentHits(), time.Now()
	for time.Since(t0) < limit && ctx.Err() == nil {
		if r.agentHits() > h {
			return time.Since(t0), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0), false
}

// startAgent runs the echo agent on sock and waits for the socket.
func (r *chaosRun) startAgent(dir, sock string) (*Process, error) {
	p, err := StartProcess("echo-agent", filepath.Join(dir, "agent.log"), nil, r.cfg.EchoAgent, "-uds", sock)
	if err != nil {
		return nil, err
	}
	for t0 := time.Now(); time.Since(t0) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return p, nil
		}
		if p.Exited() {
			break
		}
	}
	p.Stop(time.Second)
	return nil, fmt.Errorf("echo agent did not listen on %s: %s", sock, p.LogTail())
}

// agentKilled: the echo agent (fail-open) is killed with SIGKILL while
// requests go through it, then restarted.
func (r *chaosRun) agentKilled(ctx context.Context) ChaosOutcome {
	o := ChaosOutcome{Name: "agent-killed",
		Expect: "echo agent (failure-mode open) killed with SIGKILL under load: no failed request; requests go through the agent again within 15 s of its restart"}
	if r.cfg.EchoAgent == "" {
		o.Skipped, o.Pass = true, true
		o.Observed = "skipped: examples/agents/echo is not available"
		return o
	}
	dir, err := os.MkdirTemp("", "sa") // short: Unix socket paths are limited
	if err != nil {
		o.Observed = err.Error()
		return o
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "echo.sock")
	p, err := r.startAgent(dir, sock)
	if err != nil {
		o.Observed = err.Error()
		return o
	}
	defer func() { p.Stop(5 * time.Second) }()
	r.pc.AgentSocket = sock
	defer func() { // back to the config without the agent
		r.pc.AgentSocket = ""
		if err := r.c.WriteConfig(r.pc); err == nil {
			_ = LoadConfig(r.c)
		}
	}()
	if err := r.c.WriteConfig(r.pc); err != nil {
		o.Observed = err.Error()
		return o
	}
	if err := LoadConfig(r.c); err != nil {
		o.Observed = err.Error()
		return o
	}
	if _, ok := r.waitAgent(ctx, 15*time.Second); !ok {
		o.Observed = "requests never went through the agent: " + p.LogTail()
		return o
	}
	s := snap(r.live)
	p.Kill()
	sleep(ctx, r.cfg.Hold)
	down := s.since(r.live)
	if p, err = r.startAgent(dir, sock); err != nil {
		o.Observed = err.Error()
		return o
	}
	back, ok := r.waitAgent(ctx, 15*time.Second)
	d := s.since(r.live)
	o.Observed = fmt.Sprintf("agent dead for %s: %d ok, %d failed (%v); through the agent again after %s; whole scenario %d failed", r.cfg.Hold, down.ok, down.fail, down.status, back.Round(time.Millisecond), d.fail)
	if !ok {
		o.Observed = fmt.Sprintf("agent dead for %s: %d ok, %d failed (%v); no request through the restarted agent within 15 s", r.cfg.Hold, down.ok, down.fail, down.status)
	}
	o.Pass = ok && d.fail == 0 && down.ok > 0
	return o
}

// WriteChaosReport writes chaos.md into dir and returns whether every
// scenario passed.
func WriteChaosReport(outs []ChaosOutcome, dir, header string) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("results dir: %w", err)
	}
	var md strings.Builder
	md.WriteString("# Chaos results\n\n" + header + "\n| Scenario | Expected | Observed | Verdict |\n|---|---|---|---|\n")
	all := true
	for _, o := range outs {
		v := "PASS"
		switch {
		case o.Skipped:
			v = "skipped"
		case !o.Pass:
			v, all = "FAIL", false
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s |\n", o.Name, o.Expect, strings.ReplaceAll(o.Observed, "|", "/"), v)
	}
	if err := os.WriteFile(filepath.Join(dir, "chaos.md"), []byte(md.String()), 0o644); err != nil {
		return false, fmt.Errorf("write chaos.md: %w", err)
	}
	return all, nil
}
