package integration

import (
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// lbScenario is a set of four backends with one sick (slow, failing or
// weak) and the load it runs under.
type lbScenario struct {
	name    string
	workers []int         // capacity of each backend (0: unlimited)
	service time.Duration // service time of a request (with workers)
	retries int           // retries on 503, for every policy
	sick    int           // the backend whose share is reported
	// clients > 0 makes the load closed-loop: that many clients, each
	// sending its next request as soon as the last one is answered, as
	// fast as the proxy goes (the proxy is CPU-bound); else open loop at
	// the rate.
	clients int
	// longPolicies, when set, are the only policies run in the long
	// suite (SENTINEL_LONG_TESTS=1 without SENTINEL_LB_BENCH), with at
	// most 1 s of warm-up and 3 s measured, to keep it short.
	longPolicies []string
	setup        func(bs []*lbBackend)
	// oracle is the best possible balancing: the healthy backends only,
	// or weights matching the capacities.
	oracleTargets func(bs []*lbBackend) ([]*lbBackend, []int)
}

// lbPolicyCase is a policy under test.
type lbPolicyCase struct {
	name   string
	policy func(upstream string) map[string]any
	oracle bool
	// benchOnly: not in the long suite (SENTINEL_LONG_TESTS=1 without
	// SENTINEL_LB_BENCH), to keep it short.
	benchOnly bool
}

// lbRow is one measured line of the table.
type lbRow struct {
	policy                 string
	p50, p99, p999         time.Duration
	rps                    float64
	success, sickShare     float64
	requests               int
	vsOracle, vsRoundRobin float64
}

// TestLBBench is the benchmark harness of the load-balancing policies: for
// each scenario it starts four real loopback backends per policy, runs the
// same open-loop load through the proxy, and prints p50, p99, p999,
// success rate and the sick backend's share of requests, side by side
// with Caddy's round_robin and least_conn and an oracle. It is long (about
// four minutes), so it runs only when asked:
//
//	SENTINEL_LB_BENCH=1 go test ./integration -run TestLBBench -v -timeout 20m
//
// SENTINEL_LB_CONCURRENT=1 runs the policies of a scenario at the same
// time, each with its own backends and load, and reports the p99 ratios
// paired by round: on a shared machine, the way to compare them.
// SENTINEL_LB_RATE (requests/s, default 1000), SENTINEL_LB_WARMUP (default
// 2s, not measured: the policies learn), SENTINEL_LB_MEASURE (default 5s)
// and SENTINEL_LB_REPEAT (runs per policy, default 1) change the load;
// SENTINEL_LB_SCENARIOS and SENTINEL_LB_POLICIES (comma-separated words of
// the names) run a part; SENTINEL_LB_BENCH_OUT writes the Markdown tables
// to a file.
func TestLBBench(t *testing.T) {
	if os.Getenv("SENTINEL_LB_BENCH") == "" && !testutil.LongTests() {
		t.Skip("set SENTINEL_LB_BENCH=1 (or SENTINEL_LONG_TESTS=1) to run the load-balancing benchmark")
	}
	rate := lbEnvFloat(t, "SENTINEL_LB_RATE", 1000)
	warmup := lbEnvDuration(t, "SENTINEL_LB_WARMUP", 2*time.Second)
	measure := lbEnvDuration(t, "SENTINEL_LB_MEASURE", 5*time.Second)
	repeat := int(lbEnvFloat(t, "SENTINEL_LB_REPEAT", 1))

	healthyOnly := func(bs []*lbBackend) ([]*lbBackend, []int) { return bs[:3], nil }
	scenarios := []lbScenario{
		{name: "one slow backend (+50 ms)", sick: 3, oracleTargets: healthyOnly,
			setup: func(bs []*lbBackend) { bs[3].delay.Store(int64(50 * time.Millisecond)) }},
		{name: "one fast-failing backend (30 % 503 in < 1 ms), no retries", sick: 3, oracleTargets: healthyOnly,
			setup: func(bs []*lbBackend) { bs[3].failPct.Store(30) }},
		{name: "one fast-failing backend (30 % 503 in < 1 ms), 1 retry on 503", sick: 3, retries: 1, oracleTargets: healthyOnly,
			setup: func(bs []*lbBackend) { bs[3].failPct.Store(30) }},
		{name: "one slow backend (+50 ms), proxy saturated (closed loop, 64 clients)", sick: 3, clients: 64, oracleTargets: healthyOnly,
			longPolicies: []string{"oracle", "round_robin (Caddy)", "peak_ewma", "adaptive (defaults)"},
			setup:        func(bs []*lbBackend) { bs[3].delay.Store(int64(50 * time.Millisecond)) }},
		{name: "unequal capacity (1, 2, 4, 8 workers × 4 ms)", sick: 0, workers: []int{1, 2, 4, 8}, service: 4 * time.Millisecond,
			oracleTargets: func(bs []*lbBackend) ([]*lbBackend, []int) { return bs, []int{1, 2, 4, 8} }},
	}
	policies := []lbPolicyCase{
		{name: "oracle", oracle: true},
		{name: "round_robin (Caddy)", policy: func(string) map[string]any { return map[string]any{"policy": "round_robin"} }},
		{name: "least_conn (Caddy)", policy: func(string) map[string]any { return map[string]any{"policy": "least_conn"} }},
		{name: "peak_ewma", policy: func(u string) map[string]any { return map[string]any{"policy": "peak_ewma", "upstream": u} }},
		{name: "peak_ewma (slow_ratio -1³)", policy: func(u string) map[string]any {
			return map[string]any{"policy": "peak_ewma", "upstream": u, "slow_ratio": -1}
		}, benchOnly: true},
		{name: "adaptive (defaults)", policy: func(u string) map[string]any { return map[string]any{"policy": "adaptive", "upstream": u} }},
		{name: "adaptive (slow_margin 1h³)", policy: func(u string) map[string]any {
			return map[string]any{"policy": "adaptive", "upstream": u, "slow_margin": "1h"}
		}, benchOnly: true},
		{name: "adaptive (original constants²)", policy: func(u string) map[string]any {
			return map[string]any{"policy": "adaptive", "upstream": u, "adjustment_interval": "10s", "min_requests": 100, "latency_ratio": -1}
		}},
		{name: "adaptive (tuned¹)", policy: func(u string) map[string]any {
			return map[string]any{"policy": "adaptive", "upstream": u, "adjustment_interval": "500ms", "min_requests": 5, "latency_threshold": "10ms", "min_weight_ratio": 0.02}
		}},
		{name: "p2c (in_flight)", policy: func(u string) map[string]any { return map[string]any{"policy": "p2c", "upstream": u} }},
		{name: "p2c (both)", policy: func(u string) map[string]any {
			return map[string]any{"policy": "p2c", "upstream": u, "load_metric": "both"}
		}},
		{name: "weighted_least_connections", policy: func(u string) map[string]any {
			return map[string]any{"policy": "weighted_least_connections", "upstream": u}
		}},
	}

	scenarios = lbFilter(scenarios, os.Getenv("SENTINEL_LB_SCENARIOS"), func(s lbScenario) string { return s.name })
	policies = lbFilter(policies, os.Getenv("SENTINEL_LB_POLICIES"), func(p lbPolicyCase) string { return p.name })
	concurrent := os.Getenv("SENTINEL_LB_CONCURRENT") == "1"
	var out strings.Builder
	if concurrent {
		fmt.Fprintf(&out, "Load: every policy of a scenario at the same time, each with its own four fresh backends and its own load (the load shared equally: open loop %.0f requests/s in all, closed loop the scenario's clients, at least 4 each), %v warm-up (not measured) then %v measured; ", rate, warmup, measure)
		fmt.Fprintf(&out, "%d round(s): latencies are the median of the rounds' quantiles, the ratios the median of the rounds' ratios (paired), success and share over all rounds.\n", repeat)
	} else {
		fmt.Fprintf(&out, "Load: %.0f requests/s open loop (or the scenario's closed loop), %v warm-up (not measured) then %v measured, per policy; fresh backends for each run; ", rate, warmup, measure)
		fmt.Fprintf(&out, "%d run(s) per policy, interleaved: latencies are the median of the runs' quantiles, success and share over all runs.\n", repeat)
	}
	longSuite := os.Getenv("SENTINEL_LB_BENCH") == ""
	if longSuite {
		policies = slices.DeleteFunc(policies, func(p lbPolicyCase) bool { return p.benchOnly })
	}
	for si, sc := range scenarios {
		policies := policies
		warmup, measure := warmup, measure
		if longSuite && sc.longPolicies != nil {
			policies = slices.DeleteFunc(slices.Clone(policies), func(p lbPolicyCase) bool { return !slices.Contains(sc.longPolicies, p.name) })
			warmup, measure = min(warmup, time.Second), min(measure, 3*time.Second)
		}
		runs := make([][]lbRow, len(policies))
		for rep := range repeat {
			if concurrent {
				for pi, r := range runLBConcurrent(t, sc, policies, fmt.Sprintf("lbb-%d-%d", si, rep), rate, warmup, measure) {
					runs[pi] = append(runs[pi], r)
				}
				continue
			}
			for pi, pc := range policies {
				runs[pi] = append(runs[pi], runLBCase(t, sc, pc, fmt.Sprintf("lbb-%d-%d-%d", si, pi, rep), rate, warmup, measure))
			}
		}
		rows := make([]lbRow, len(policies))
		for pi := range policies {
			rows[pi] = lbMedian(runs[pi])
		}
		oracle, rr := rows[0], rows[1]
		if concurrent {
			// Paired: the median over the rounds of the ratio in each
			// round, whose runs shared the machine's noise.
			for pi := range rows {
				rows[pi].vsOracle = lbPaired(runs[pi], runs[0])
				rows[pi].vsRoundRobin = lbPaired(runs[pi], runs[1])
			}
		}
		fmt.Fprintf(&out, "\n#### %s\n\n", sc.name)
		out.WriteString("| policy | req/s | p50 | p99 | p999 | success | sick backend's share | p99 ÷ oracle | p99 ÷ round robin |\n")
		out.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			if !concurrent {
				r.vsOracle = float64(r.p99) / float64(oracle.p99)
				r.vsRoundRobin = float64(r.p99) / float64(rr.p99)
			}
			fmt.Fprintf(&out, "| %s | %.0f | %s | %s | %s | %.2f %% | %.2f %% | %.2f | %.2f |\n", r.policy, r.rps, lbMillis(r.p50), lbMillis(r.p99), lbMillis(r.p999),
				100*r.success, 100*r.sickShare, r.vsOracle, r.vsRoundRobin)
		}
	}
	out.WriteString("\n¹ adaptive (tuned): adjustment_interval 500ms, min_requests 5, latency_threshold 10ms, min_weight_ratio 0.02.\n")
	out.WriteString("³ without the slow-target rule (as before it existed): peak_ewma compares latency × (in flight + 1) alone; adaptive never leaves a slow target out of the draw.\n")
	fmt.Println(out.String())
	if path := os.Getenv("SENTINEL_LB_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runLBCase runs one policy through one scenario.
func runLBCase(t *testing.T, sc lbScenario, pc lbPolicyCase, upstream string, rate float64, warmup, measure time.Duration) lbRow {
	bs := make([]*lbBackend, 4)
	for i := range bs {
		w := 0
		if i < len(sc.workers) {
			w = sc.workers[i]
		}
		bs[i] = startLBBackend(t, w, sc.service)
	}
	defer func() {
		for _, b := range bs {
			b.srv.Close()
		}
	}()
	if sc.setup != nil {
		sc.setup(bs)
	}
	route := lbRoute{prefix: "/b", upstream: upstream, targets: bs, retries: sc.retries}
	if pc.oracle {
		route.targets, route.weights = sc.oracleTargets(bs)
		route.policy = map[string]any{"policy": "sentinel_weighted", "upstream": upstream}
	} else {
		route.policy = pc.policy(upstream)
	}
	listen := testutil.FreeAddr(t)
	tester(t).InitServer(lbConfig(listen, []lbRoute{route}), "json")

	gen := newLBLoadGen("http://"+listen+"/b/x", rate)
	stop := make(chan struct{})
	done := make(chan struct{})
	if sc.clients > 0 {
		go func() { gen.runClosed(stop, sc.clients); close(done) }()
	} else {
		go func() { gen.run(stop); close(done) }()
	}
	time.Sleep(warmup)
	hits := newLBHitCounter(bs...)
	gen.record(true)
	began := time.Now()
	time.Sleep(measure)
	res := gen.record(false)
	elapsed := time.Since(began)
	h := hits.delta()
	close(stop)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatalf("%s, %s: the load did not stop", sc.name, pc.name)
	}
	row := lbRow{
		policy: pc.name, p50: res.quantile(0.50), p99: res.quantile(0.99), p999: res.quantile(0.999),
		rps: float64(res.total) / elapsed.Seconds(), success: res.successRate(), sickShare: lbShare(h, sc.sick), requests: res.total,
	}
	t.Logf("%-60s %-28s n=%d rps=%.0f p50=%v p99=%v p999=%v success=%.2f%% sick=%.2f%% hits=%v", sc.name, pc.name, res.total, row.rps,
		row.p50, row.p99, row.p999, 100*row.success, 100*row.sickShare, h)
	return row
}

// runLBConcurrent runs every policy through one scenario at the same time:
// one proxy config with a route per policy, each with its own four fresh
// backends and its own load generator (the scenario's load shared equally:
// the open loop's rate, the closed loop's clients, at least 4 each), so
// that they all share the machine's noise.
func runLBConcurrent(t *testing.T, sc lbScenario, pcs []lbPolicyCase, tag string, rate float64, warmup, measure time.Duration) []lbRow {
	type lane struct {
		bs   []*lbBackend
		gen  *lbLoadGen
		hits *lbHitCounter
		done chan struct{}
	}
	listen := testutil.FreeAddr(t)
	lanes := make([]*lane, len(pcs))
	var routes []lbRoute
	for pi, pc := range pcs {
		l := &lane{bs: make([]*lbBackend, 4), done: make(chan struct{})}
		for i := range l.bs {
			w := 0
			if i < len(sc.workers) {
				w = sc.workers[i]
			}
			l.bs[i] = startLBBackend(t, w, sc.service)
		}
		if sc.setup != nil {
			sc.setup(l.bs)
		}
		upstream := fmt.Sprintf("%s-%d", tag, pi)
		route := lbRoute{prefix: fmt.Sprintf("/p%d", pi), upstream: upstream, targets: l.bs, retries: sc.retries}
		if pc.oracle {
			route.targets, route.weights = sc.oracleTargets(l.bs)
			route.policy = map[string]any{"policy": "sentinel_weighted", "upstream": upstream}
		} else {
			route.policy = pc.policy(upstream)
		}
		routes = append(routes, route)
		l.gen = newLBLoadGen("http://"+listen+route.prefix+"/x", rate/float64(len(pcs)))
		lanes[pi] = l
	}
	defer func() {
		for _, l := range lanes {
			for _, b := range l.bs {
				b.srv.Close()
			}
		}
	}()
	tester(t).InitServer(lbConfig(listen, routes), "json")
	stop := make(chan struct{})
	clients := max(sc.clients/len(pcs), 4) // the scenario's load, shared
	for _, l := range lanes {
		if sc.clients > 0 {
			go func() { l.gen.runClosed(stop, clients); close(l.done) }()
		} else {
			go func() { l.gen.run(stop); close(l.done) }()
		}
	}
	time.Sleep(warmup)
	for _, l := range lanes {
		l.hits = newLBHitCounter(l.bs...)
		l.gen.record(true)
	}
	began := time.Now()
	time.Sleep(measure)
	rows := make([]lbRow, len(lanes))
	for pi, l := range lanes {
		res := l.gen.record(false)
		elapsed := time.Since(began)
		h := l.hits.delta()
		rows[pi] = lbRow{
			policy: pcs[pi].name, p50: res.quantile(0.50), p99: res.quantile(0.99), p999: res.quantile(0.999),
			rps: float64(res.total) / elapsed.Seconds(), success: res.successRate(), sickShare: lbShare(h, sc.sick), requests: res.total,
		}
		t.Logf("%-60s %-28s n=%d rps=%.0f p50=%v p99=%v p999=%v success=%.2f%% sick=%.2f%% hits=%v", sc.name, pcs[pi].name, res.total, rows[pi].rps,
			rows[pi].p50, rows[pi].p99, rows[pi].p999, 100*rows[pi].success, 100*rows[pi].sickShare, h)
	}
	close(stop)
	for _, l := range lanes {
		select {
		case <-l.done:
		case <-time.After(30 * time.Second):
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("%s: the load did not stop", sc.name)
		}
	}
	return rows
}

// lbPaired returns the median over the rounds of a's p99 divided by
// base's in the same round.
func lbPaired(a, base []lbRow) float64 {
	var v []float64
	for i := range min(len(a), len(base)) {
		if base[i].p99 > 0 {
			v = append(v, float64(a[i].p99)/float64(base[i].p99))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// lbMedian combines the runs of a policy: the median of each latency
// quantile, success rate and share over all requests.
func lbMedian(runs []lbRow) lbRow {
	med := func(get func(lbRow) time.Duration) time.Duration {
		v := make([]time.Duration, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := lbRow{policy: runs[0].policy}
	out.p50 = med(func(r lbRow) time.Duration { return r.p50 })
	out.p99 = med(func(r lbRow) time.Duration { return r.p99 })
	out.p999 = med(func(r lbRow) time.Duration { return r.p999 })
	rps := make([]float64, len(runs))
	for i, r := range runs {
		rps[i] = r.rps
	}
	slices.Sort(rps)
	out.rps = rps[len(rps)/2]
	var ok, share float64
	for _, r := range runs {
		out.requests += r.requests
		ok += r.success * float64(r.requests)
		share += r.sickShare * float64(r.requests)
	}
	out.success, out.sickShare = ok/float64(out.requests), share/float64(out.requests)
	return out
}

// lbFilter keeps the items whose name contains one of the comma-separated
// words of filter (all when empty); the oracle and round robin always
// stay, as the references.
func lbFilter[T any](items []T, filter string, name func(T) string) []T {
	if filter == "" {
		return items
	}
	var out []T
	for _, it := range items {
		n := name(it)
		keep := n == "oracle" || strings.HasPrefix(n, "round_robin")
		for _, w := range strings.Split(filter, ",") {
			keep = keep || strings.Contains(n, w)
		}
		if keep {
			out = append(out, it)
		}
	}
	return out
}

// lbMillis formats a duration in milliseconds.
func lbMillis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func lbEnvFloat(t *testing.T, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func lbEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}
