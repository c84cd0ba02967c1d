package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The load-balancing scenario of issue 25: one of four backends is slow
// (50 ms) and the proxy is the bottleneck (closed loop, maximum
// throughput). Sentinel balances the four with peak_ewma and with
// adaptive, and an oracle (round-robin over the three fast backends
// alone: a pool without the slow one) gives the latency to compare with.
// The three run at the same time, each with its own load generator and
// its own backends (so that each contender's share of the slow backend is
// known), and each round gives the p99 of each policy ÷ the oracle's.

// LBContender is one Sentinel of the load-balancing scenario.
type LBContender struct {
	// Name labels the contender in results.
	Name string
	// Policy is the upstream's load-balancing algorithm.
	Policy string
	// Slow is set when the pool has the slow backend.
	Slow bool
}

// LBContenders are the contenders of the load-balancing scenario: the
// oracle first.
var LBContenders = []LBContender{
	{Name: "oracle", Policy: "round_robin"},
	{Name: "peak_ewma", Policy: "peak_ewma", Slow: true},
	{Name: "adaptive", Policy: "adaptive", Slow: true},
}

// LBTarget is the goal: p99 ≤ 1.2 × the oracle's.
const LBTarget = 1.2

// LBConfig configures the load-balancing scenario.
type LBConfig struct {
	// Bins are the proxy binaries (Sentinel only is used).
	Bins Binaries
	// WorkDir holds configs and logs of the contenders.
	WorkDir string
	// Rounds, each Duration long, after a Warmup.
	Rounds           int
	Duration, Warmup time.Duration
	// Conns is the number of client connections of each contender.
	Conns int
	// SlowLatency is the slow backend's added latency (50 ms).
	SlowLatency time.Duration
	// External uses wrk when installed.
	External bool
	// Logf reports progress.
	Logf func(string, ...any)
}

// LBRound is one contender's measured round.
type LBRound struct {
	Run
	// SlowShare is the fraction of the contender's requests that its
	// slow backend answered.
	SlowShare float64
}

// LBResult is the outcome of the load-balancing scenario.
type LBResult struct {
	// Config is what ran.
	Config LBConfig
	// Rounds holds, per round, one LBRound per contender in the order of
	// LBContenders.
	Rounds [][]LBRound
}

// RunLB runs the load-balancing scenario.
func RunLB(ctx context.Context, cfg LBConfig) (*LBResult, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if _, err := RaiseFileLimit(); err != nil {
		logf("warning: %v", err)
	}
	cert, key, err := WriteCert(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	var backends []*Backend
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()
	var cs []*Contender
	defer func() {
		for _, c := range cs {
			c.Stop()
		}
	}()
	slows := make([]*Backend, len(LBContenders))
	pools := make([][]*Backend, len(LBContenders))
	for i, lc := range LBContenders {
		pc := ProxyConfig{CertFile: cert, KeyFile: key, Policy: lc.Policy}
		n := 3
		if lc.Slow {
			n = 4
		}
		for j := range n {
			o := BackendOptions{BodySize: 128}
			if j == 3 {
				o.Latency = cfg.SlowLatency
			}
			b, err := StartBackend("", o)
			if err != nil {
				return nil, err
			}
			backends = append(backends, b)
			pools[i] = append(pools[i], b)
			pc.Upstreams = append(pc.Upstreams, b.Addr)
			if j == 3 {
				slows[i] = b
			}
		}
		c, err := NewContender(lc.Name, KindSentinel, filepath.Join(cfg.WorkDir, "lb"))
		if err != nil {
			return nil, err
		}
		if err := c.Start(cfg.Bins, pc); err != nil {
			return nil, fmt.Errorf("start %s: %w", lc.Name, err)
		}
		cs = append(cs, c)
	}
	sc := Scenario{Name: "lb-saturated", Path: "/b/128", Conns: cfg.Conns}
	bc := BenchConfig{}
	if _, err := measureAll(ctx, bc, sc, cs, cfg.Warmup, false); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	res := &LBResult{Config: cfg}
	hits := func(i int) (all, slow int64) {
		for _, b := range pools[i] {
			all += b.Hits()
		}
		if slows[i] != nil {
			slow = slows[i].Hits()
		}
		return all, slow
	}
	for r := range cfg.Rounds {
		type count struct{ all, slow int64 }
		before := make([]count, len(cs))
		for i := range cs {
			before[i].all, before[i].slow = hits(i)
		}
		runs, err := measureAll(ctx, bc, sc, cs, cfg.Duration, cfg.External)
		if err != nil {
			return res, fmt.Errorf("round %d: %w", r, err)
		}
		round := make([]LBRound, len(cs))
		for i, run := range runs {
			run.Round = r
			all, slow := hits(i)
			round[i] = LBRound{Run: run}
			if d := all - before[i].all; d > 0 {
				round[i].SlowShare = float64(slow-before[i].slow) / float64(d)
			}
			logf("%-12s %-10s round %d: %8.0f req/s p50 %-9s p99 %-9s err %d slow backend %.2f %% (%s)", sc.Name, run.Contender, r,
				run.Result.RPS(), run.Result.Latency[50], run.Result.Latency[99], run.Result.Errors, 100*round[i].SlowShare, run.Result.Tool)
		}
		res.Rounds = append(res.Rounds, round)
	}
	return res, nil
}

// LBSummary is a policy's outcome: the per-round ratios of its p99 to the
// oracle's, and its share of the slow backend.
type LBSummary struct {
	Name string
	// P99 is the median of the rounds' p99.
	P99 time.Duration
	// Ratio is the median of the per-round p99 ÷ the oracle's; Min and
	// Max are their range.
	Ratio, Min, Max float64
	// SlowShare is the median share of the slow backend.
	SlowShare float64
	// RPS is the median throughput.
	RPS float64
}

// Summaries returns one LBSummary per contender (the oracle's ratios are 1).
func (r *LBResult) Summaries() []LBSummary {
	var out []LBSummary
	for i, lc := range LBContenders {
		var ratios, p99s, shares, rps []float64
		for _, round := range r.Rounds {
			if i >= len(round) {
				continue
			}
			p99, oracle := round[i].Result.Latency[99], round[0].Result.Latency[99]
			p99s = append(p99s, float64(p99))
			shares = append(shares, round[i].SlowShare)
			rps = append(rps, round[i].Result.RPS())
			if oracle > 0 {
				ratios = append(ratios, float64(p99)/float64(oracle))
			}
		}
		s := LBSummary{Name: lc.Name, P99: time.Duration(median(p99s)), Ratio: median(ratios), SlowShare: median(shares), RPS: median(rps)}
		if len(ratios) > 0 {
			s.Min, s.Max = slices.Min(ratios), slices.Max(ratios)
		}
		out = append(out, s)
	}
	return out
}

// WriteLBReport writes lb.md into dir and reports whether every policy
// met the target.
func WriteLBReport(r *LBResult, dir, header string) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("results dir: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Load balancing with one slow backend, proxy saturated\n\n")
	b.WriteString(header)
	fmt.Fprintf(&b, "\nFour backends, one of them %s slow; each contender is a Sentinel with its own backends and its own load generator "+
		"(%d connections, closed loop, maximum throughput), the three loaded at the same time; %d rounds of %s. "+
		"The oracle balances the three fast backends alone (round-robin). Ratio: p99 ÷ the oracle's p99 in the same round, median (range).\n\n",
		r.Config.SlowLatency, r.Config.Conns, len(r.Rounds), r.Config.Duration)
	b.WriteString("| Policy | p99 (median) | p99 ÷ oracle, paired | slow backend's share | req/s | Target |\n|---|---|---|---|---|---|\n")
	ok := true
	for i, s := range r.Summaries() {
		if i == 0 {
			fmt.Fprintf(&b, "| %s | %s | 1 | — | %.0f | — |\n", s.Name, s.P99.Round(time.Microsecond), s.RPS)
			continue
		}
		verdict := "met"
		if s.Ratio > LBTarget {
			verdict, ok = fmt.Sprintf("not met (≤ %.1f)", LBTarget), false
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f (%.2f–%.2f) | %.2f %% | %.0f | %s |\n", s.Name, s.P99.Round(time.Microsecond), s.Ratio, s.Min, s.Max, 100*s.SlowShare, s.RPS, verdict)
	}
	if err := os.WriteFile(filepath.Join(dir, "lb.md"), []byte(b.String()), 0o644); err != nil {
		return false, fmt.Errorf("write lb.md: %w", err)
	}
	return ok, nil
}
