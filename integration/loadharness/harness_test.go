package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// The quick variants of the three modes, as CI runs them (`go test`):
// real Sentinel and stock Caddy binaries, real backends, real load.

var (
	buildOnce sync.Once
	testBins  Binaries
	buildErr  error
)

// binaries builds Sentinel and stock Caddy once for the test binary, into
// the same cache as the command.
func binaries(t *testing.T) *Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs Sentinel and Caddy: not in -short mode")
	}
	buildOnce.Do(func() {
		root, err := ModuleRoot(".")
		if err != nil {
			buildErr = err
			return
		}
		uc, err := os.UserCacheDir()
		if err != nil {
			uc = os.TempDir()
		}
		testBins, buildErr = BuildBinaries(context.Background(), root, filepath.Join(uc, "sentinel-loadharness"), t.Logf)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return &testBins
}

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func quickOptions(t *testing.T, mode string) options {
	testutil.Long(t)      // minutes of real load: SENTINEL_LONG_TESTS=1
	testutil.Exclusive(t) // timing-sensitive: never beside another such test
	o, err := parseFlags([]string{"-mode", mode, "-quick", "-install=false", "-out", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o.bins = binaries(t)
	return o
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestQuickBench(t *testing.T) {
	o := quickOptions(t, "bench")
	o.Rounds, o.RunDuration = 1, time.Second
	o.Scenarios, o.Contenders = "h1-small,h2-tls,fixed-rate", "direct,caddy,sentinel"
	o.External, o.profileAlways, o.Rate = false, true, 300
	if err := run(context.Background(), o, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, filepath.Join(o.Out, "results.csv"))
	// header + 3 scenarios × 3 contenders, less direct in h2-tls
	if len(rows) != 1+3*3-1 {
		t.Fatalf("results.csv has %d rows: %v", len(rows), rows)
	}
	errs := slices.Index(rows[0], "errors")
	for _, r := range rows[1:] {
		if r[2] != "go" || r[errs] != "0" || r[4] == "0" {
			t.Errorf("row %v: want the go generator, requests and no errors", r)
		}
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| h2-tls | sentinel/caddy |", "CPU profile of Sentinel in h1-small", "Machine:", "300 req/s open loop"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"throughput.png", "latency-h1-small.png", "latency-h2-tls.png", "latency-fixed-rate.png", "runs.csv", "profile-h1-small.pb.gz"} {
		if st, err := os.Stat(filepath.Join(o.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
}

// TestQuickBenchConcurrent: -concurrent loads stock Caddy and Sentinel
// at the same time in every round (the default contenders and scenarios of
// the mode) and reports the paired ratios, peak RSS and the targets.
func TestQuickBenchConcurrent(t *testing.T) {
	o := quickOptions(t, "bench")
	o.Concurrent, o.Rounds, o.RunDuration, o.External, o.Profile = true, 2, time.Second, false, false
	o.Contenders = "" // the mode's default
	o, err := withDefaults(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), o, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	runs := readCSV(t, filepath.Join(o.Out, "runs.csv"))
	// header + 3 scenarios × 2 contenders × 2 rounds
	if len(runs) != 1+3*2*2 {
		t.Fatalf("runs.csv has %d rows: %v", len(runs), runs)
	}
	// In each round both ran at the same time: their runs overlap.
	for _, r := range runs[1:] {
		if r[1] != "caddy" && r[1] != "sentinel" || r[5] != "0" || r[4] == "0" {
			t.Errorf("run %v: want caddy or sentinel, requests and no errors", r)
		}
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"loaded **at the same time**", "| h1-small | sentinel/caddy |", "| h2-tls | sentinel/caddy |", "| h1-64k | sentinel/caddy |",
		"peak RSS | peak private | Target |", "-concurrent -quick"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
}

func TestQuickBenchNginxWrkH2load(t *testing.T) {
	testutil.Long(t)
	testutil.Exclusive(t)
	var missing []string
	for _, tool := range []string{"nginx", "wrk", "h2load"} {
		if !HaveTool(tool) {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		testutil.Missing(t, "not installed: %s (Debian: apt-get install nginx wrk nghttp2-client)", strings.Join(missing, ", "))
	}
	o := quickOptions(t, "bench")
	o.Rounds, o.RunDuration = 1, time.Second
	o.Scenarios, o.Contenders, o.Profile = "h1-small,h2-tls", "sentinel,nginx", false
	if err := run(context.Background(), o, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, filepath.Join(o.Out, "results.csv"))
	if len(rows) != 5 {
		t.Fatalf("results.csv has %d rows: %v", len(rows), rows)
	}
	for _, r := range rows[1:] {
		want := map[string]string{"h1-small": "wrk", "h2-tls": "h2load"}[r[0]]
		if r[2] != want || r[slices.Index(rows[0], "errors")] != "0" || r[4] == "0" {
			t.Errorf("row %v: want %s, requests and no errors", r, want)
		}
	}
	md, _ := os.ReadFile(filepath.Join(o.Out, "results.md"))
	if !bytes.Contains(md, []byte("| h1-small | sentinel/nginx |")) {
		t.Errorf("results.md lacks the sentinel/nginx ratio:\n%s", md)
	}
}

func TestQuickSoak(t *testing.T) {
	o := quickOptions(t, "soak")
	o.Duration = 6 * time.Second
	if err := run(context.Background(), o, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "soak.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("Verdict: PASSED")) || !bytes.Contains(md, []byte("| goroutines |")) {
		t.Errorf("soak.md:\n%s", md)
	}
	if rows := readCSV(t, filepath.Join(o.Out, "soak.csv")); len(rows) < 6 {
		t.Errorf("soak.csv has %d rows", len(rows))
	}
}

func TestQuickChaos(t *testing.T) {
	o := quickOptions(t, "chaos")
	if err := run(context.Background(), o, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "chaos.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"backend-crash-return", "backend-5xx", "all-backends-down", "reload-storm", "agent-killed"} {
		if !bytes.Contains(md, []byte("| "+name+" |")) {
			t.Errorf("chaos.md lacks %s:\n%s", name, md)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-mode", "soak", "-duration", "1h"})
	if err != nil || o.Mode != "soak" || o.Duration != time.Hour {
		t.Fatalf("got %+v, %v", o, err)
	}
	if o, err := parseFlags([]string{"-concurrent"}); err != nil || !o.Concurrent || o.Contenders != "caddy,sentinel" {
		t.Fatalf("-concurrent: %+v, %v", o, err)
	}
	if o, err := parseFlags(nil); err != nil || o.Contenders != "direct,caddy,caddy-control,sentinel,nginx" {
		t.Fatalf("default contenders: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-mode", "nope"}); err == nil {
		t.Fatal("unknown mode accepted")
	}
	if o, err := parseFlags([]string{"-sentinel-env", "GOGC=100", "-sentinel-env", "GOMEMLIMIT=1GiB"}); err != nil || strings.Join(o.SentinelEnv, " ") != "GOGC=100 GOMEMLIMIT=1GiB" {
		t.Fatalf("-sentinel-env: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-sentinel-env", "GOGC"}); err == nil || !strings.Contains(err.Error(), `want KEY=value, got "GOGC"`) {
		t.Fatalf("-sentinel-env without a value: %v", err)
	}
	if o, err := parseFlags([]string{"-concurrent", "-sentinel-alt", "/x/sentinel"}); err != nil || o.SentinelAlt != "/x/sentinel" || o.Contenders != "caddy,sentinel,sentinel-alt" {
		t.Fatalf("-sentinel-alt: %+v, %v", o, err)
	}
	if o, err := parseFlags([]string{"-contenders", "sentinel-alt,caddy", "-sentinel-alt", "/x/sentinel"}); err != nil || o.Contenders != "sentinel-alt,caddy" {
		t.Fatalf("-sentinel-alt listed: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-bogus"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if got := splitList(" a, ,b,"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("splitList: %q", got)
	}
}

func TestRunErrors(t *testing.T) {
	// Both errors come before anything runs: no binaries are needed.
	o, err := parseFlags([]string{"-mode", "bench", "-quick", "-install=false", "-out", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o.bins = &Binaries{}
	o.Scenarios = "no-such-scenario"
	if err := run(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), "no scenario") {
		t.Fatalf("err = %v", err)
	}
	o.Dir = t.TempDir() // no go.mod above
	if err := run(context.Background(), o, io.Discard); err == nil {
		t.Fatal("ran outside a module")
	}
}

func TestBackend(t *testing.T) {
	b, err := StartBackend("", BackendOptions{BodySize: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	get := func(path string) (int, int, error) {
		resp, err := http.Get("http://" + b.Addr + path)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, int(n), err
	}
	for path, size := range map[string]int{"/": 10, "/b/65536": 65536, "/b/0": 0, "/b/x": 10} {
		if st, n, err := get(path); err != nil || st != 200 || n != size {
			t.Errorf("GET %s: %d, %d bytes, %v; want %d bytes", path, st, n, err, size)
		}
	}
	b.SetErrorRate(1)
	if st, _, _ := get("/"); st != 500 {
		t.Errorf("error rate 1: status %d", st)
	}
	if st, _, _ := get("/health"); st != 200 {
		t.Errorf("health: %d", st)
	}
	if b.Hits() != 5 {
		t.Errorf("hits = %d, want 5 (health excluded)", b.Hits())
	}
	b.Crash()
	if _, _, err := get("/"); err == nil {
		t.Error("crashed backend answered")
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	b.SetErrorRate(0)
	if st, _, err := get("/"); err != nil || st != 200 {
		t.Errorf("after restart: %d %v", st, err)
	}
}

func TestParsers(t *testing.T) {
	out := []byte("Running 1s test\nLHRESULT 1000 2000000 1 2 100 200 300 400 500 600 700 800\n")
	r, err := parseWrk(out)
	if err != nil || r.Requests != 1000 || r.Errors != 3 || r.Elapsed != 2*time.Second || r.Latency[99.9] != 700*time.Microsecond {
		t.Fatalf("parseWrk: %+v %v", r, err)
	}
	if r.RPS() != 498.5 {
		t.Errorf("RPS = %v", r.RPS())
	}
	if _, err := parseWrk([]byte("nothing")); err == nil {
		t.Error("parseWrk accepted no result")
	}
	if _, err := parseWrk([]byte("LHRESULT a 2 3 4 5 6 7 8 9 10 11 12")); err == nil {
		t.Error("parseWrk accepted a malformed number")
	}
	d, err := parseH2loadElapsed([]byte("starting\nfinished in 2.50s, 100 req/s, 1KB/s\n"))
	if err != nil || d != 2500*time.Millisecond {
		t.Errorf("parseH2loadElapsed: %v %v", d, err)
	}
	if _, err := parseH2loadElapsed([]byte("x")); err == nil {
		t.Error("no finished line accepted")
	}
	if _, err := parseH2loadElapsed([]byte("finished in zz, 1")); err == nil {
		t.Error("bad duration accepted")
	}
	lr, err := parseH2loadLog(strings.NewReader("1\t200\t1000\n2\t503\t3000\n\n"))
	if err != nil || lr.Requests != 2 || lr.Errors != 1 || lr.Latency[50] < 990*time.Microsecond {
		t.Errorf("parseH2loadLog: %+v %v", lr, err)
	}
	if _, err := parseH2loadLog(strings.NewReader("1 x 2\n")); err == nil {
		t.Error("bad log line accepted")
	}
	if _, err := parseH2loadLog(strings.NewReader("")); err == nil {
		t.Error("empty log accepted")
	}
	cpu, err := parseStatCPU("42 (my proc) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0")
	if err != nil || cpu != 2*time.Second {
		t.Errorf("parseStatCPU: %v %v", cpu, err)
	}
	for _, bad := range []string{"no paren", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a b"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
	if v := statusKB("Name:\tx\nVmHWM:\t  1234 kB\n", "VmHWM:"); v != 1234 {
		t.Errorf("statusKB = %d", v)
	}
	// The kernel counts CPU time in clock ticks (10 ms): work until this
	// process has used one, or a fast run reads 0.
	u, err := ReadUsage(os.Getpid())
	for deadline := time.Now().Add(5 * time.Second); err == nil && u.CPU == 0 && time.Now().Before(deadline); {
		for i := 0; i < 1e6; i++ {
			cpuSink = cpuSink*31 + i
		}
		u, err = ReadUsage(os.Getpid())
	}
	if err != nil || u.CPU <= 0 || u.PeakRSS <= 0 || u.FDs <= 0 || u.FileRSS <= 0 || u.FileRSS > u.RSS {
		t.Errorf("ReadUsage(self) = %+v, %v", u, err)
	}
	if _, err := ReadUsage(1 << 30); err == nil {
		t.Error("ReadUsage of a missing pid succeeded")
	}
}

func TestGrowthAndRatios(t *testing.T) {
	var s []SoakSample
	for i := range 12 {
		rss := int64(100 << 20)
		if i >= 9 {
			rss = 120 << 20 // +20 MiB at the end
		}
		s = append(s, SoakSample{RSS: rss, Goroutines: 30 + i%2, FDs: 20})
	}
	g := growth(s)
	if len(g) != 3 || !g[0].Failed() || g[1].Failed() || g[2].Failed() || g[0].Pct() < 19 {
		t.Fatalf("growth: %+v", g)
	}
	if growth(s[:3]) != nil {
		t.Error("growth of too few samples")
	}
	if (Growth{}).Pct() != 0 {
		t.Error("Pct of zero base")
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 || median(nil) != 0 {
		t.Error("median")
	}
	b := &Bench{Scenarios: []Scenario{{Name: "s"}}, Contenders: []string{"caddy", "sentinel", "nginx"}}
	add := func(name string, rps float64, p99 time.Duration) {
		b.Runs = append(b.Runs, Run{Scenario: "s", Contender: name, CPU: time.Second, PeakRSS: 100 << 20,
			Result: LoadResult{Tool: "go", Requests: int64(rps), Elapsed: time.Second, Latency: map[float64]time.Duration{99: p99}}})
	}
	add("caddy", 1000, time.Millisecond)
	add("sentinel", 950, time.Millisecond)
	add("nginx", 2000, time.Millisecond)
	rs := Ratios(b)
	if len(rs) != 2 || rs[0].Name != "sentinel/caddy" || rs[0].Target != "missed" || rs[1].Name != "sentinel/nginx" || rs[1].Target != "" {
		t.Fatalf("ratios: %+v", rs)
	}
	dir := t.TempDir()
	b.Notes = []string{"a note"}
	b.Profiles = map[string]string{"s": "flat flat%\n"}
	if err := WriteReport(b, dir, "header\n"); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	for _, want := range []string{"| s | sentinel/caddy | 0.950 | 1.000 | 1.000 | 1.053 | 1.053 | 1.000 | NaN | missed |", "a note", "CPU profile of Sentinel in s"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	// Loaded at the same time: the CPU, RSS and paired p99 goals apply,
	// not throughput; two rounds, paired.
	c := &Bench{Concurrent: true, Contenders: []string{"caddy", "sentinel"},
		Scenarios: []Scenario{{Name: "small", Path: "/b/128"}, {Name: "big", Path: "/b/65536"}}}
	run := func(sc, name string, round int, cpu time.Duration, rss int64, p99 time.Duration) {
		c.Runs = append(c.Runs, Run{Scenario: sc, Contender: name, Round: round, CPU: cpu, PeakRSS: rss << 20, PeakPrivate: (rss - 40) << 20,
			Result: LoadResult{Requests: 1000, Elapsed: time.Second, Latency: map[float64]time.Duration{99: p99}}})
	}
	for r := range 2 {
		run("small", "caddy", r, time.Second, 60, 10*time.Millisecond)
		run("small", "sentinel", r, 950*time.Millisecond, 70, 10*time.Millisecond) // CPU 0.95 > 0.90: missed
		run("big", "caddy", r, time.Second, 60, 10*time.Millisecond)
		run("big", "sentinel", r, 950*time.Millisecond, 70, 10*time.Millisecond) // 0.95 ≤ 1.00: met
	}
	rs = Ratios(c)
	if len(rs) != 2 || rs[0].Target != "missed" || rs[1].Target != "met" || math.Abs(rs[1].CPUPaired-0.95) > 1e-9 ||
		math.Abs(rs[1].RSS-70.0/60) > 1e-9 || math.Abs(rs[1].Private-30.0/20) > 1e-9 || rs[1].P99Paired != 1 {
		t.Fatalf("concurrent ratios: %+v", rs)
	}
	c.Runs[len(c.Runs)-1].PeakRSS = 80 << 20 // 80/60 > 1.3
	if rs = Ratios(c); rs[1].Target != "missed" {
		t.Fatalf("RSS over the goal: %+v", rs[1])
	}
	if err := WriteReport(c, t.TempDir(), ""); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(safeDiv(1, 0)) != "NaN" {
		t.Error("safeDiv")
	}
}

func TestConfigs(t *testing.T) {
	c := &Contender{Name: "x", HTTPAddr: "127.0.0.1:1", TLSAddr: "127.0.0.1:2", AdminAddr: "127.0.0.1:3", APIAddr: "127.0.0.1:4", Dir: "/d"}
	pc := ProxyConfig{Upstreams: []string{"127.0.0.1:5", "127.0.0.1:6"}, CertFile: "c.pem", KeyFile: "k.pem",
		MaxAttempts: 3, RetryStatuses: []int{500}, HealthCheck: true, Breaker: true, APIToken: "tok", Variant: 1}
	kdl := SentinelKDL(c, pc)
	for _, want := range []string{`target "127.0.0.1:6"`, "retryable-status-codes 500", "request-timeout-secs 61", `token "tok"`, "circuit-breaker", "max-idle-connections-per-upstream 256"} {
		if !strings.Contains(kdl, want) {
			t.Errorf("kdl lacks %q:\n%s", want, kdl)
		}
	}
	cf := Caddyfile(c, pc)
	if !strings.Contains(cf, "reverse_proxy 127.0.0.1:5 127.0.0.1:6") || !strings.Contains(cf, "tls c.pem k.pem") {
		t.Errorf("Caddyfile:\n%s", cf)
	}
	nc := NginxConf(c, pc)
	if !strings.Contains(nc, "server 127.0.0.1:6;") || !strings.Contains(nc, "listen 127.0.0.1:2 ssl http2;") || !strings.Contains(nc, "keepalive 256;") {
		t.Errorf("nginx.conf:\n%s", nc)
	}
	if err := (&Contender{Kind: "bogus", Dir: t.TempDir()}).Start(Binaries{}, pc); err == nil {
		t.Error("unknown kind started")
	}
	if contenderKind("caddy-control") != KindCaddy || contenderKind("direct") != KindDirect {
		t.Error("contenderKind")
	}
}

// cpuSink keeps TestParsers' busy loop from being optimised away.
var cpuSink int

// TestSentinelAltRatios: a second Sentinel build (-sentinel-alt) runs as a
// Sentinel contender and is compared with stock Caddy and with Sentinel,
// paired by round, private memory included.
func TestSentinelAltRatios(t *testing.T) {
	if contenderKind("sentinel-alt") != KindSentinel {
		t.Fatal("sentinel-alt is not a Sentinel contender")
	}
	b := &Bench{Concurrent: true, Contenders: []string{"caddy", "sentinel", "sentinel-alt"}, Scenarios: []Scenario{{Name: "small", Path: "/b/128"}}}
	for round := range 3 {
		for name, cpu := range map[string]time.Duration{"caddy": time.Second, "sentinel": 900 * time.Millisecond, "sentinel-alt": 1000 * time.Millisecond} {
			b.Runs = append(b.Runs, Run{Scenario: "small", Contender: name, Round: round, CPU: cpu, PeakRSS: 90 << 20, PeakPrivate: int64(cpu/time.Millisecond) << 20,
				Result: LoadResult{Requests: 1000, Elapsed: time.Second, Latency: map[float64]time.Duration{99: time.Millisecond}}})
		}
	}
	got := map[string]Ratio{}
	for _, r := range Ratios(b) {
		got[r.Name] = r
	}
	if r := got["sentinel/sentinel-alt"]; math.Abs(r.CPUPaired-0.9) > 1e-9 || math.Abs(r.Private-0.9) > 1e-9 || r.Target != "" {
		t.Errorf("sentinel/sentinel-alt: %+v", r)
	}
	if r := got["sentinel-alt/caddy"]; math.Abs(r.CPUPaired-1) > 1e-9 || r.Target != "" {
		t.Errorf("sentinel-alt/caddy: %+v", r)
	}
	if r := got["sentinel/caddy"]; r.Target != "met" && r.Target != "missed" {
		t.Errorf("sentinel/caddy has no verdict: %+v", r)
	}
}

// TestLBReport: the load-balancing scenario's ratios are paired by round
// (each policy's p99 ÷ the oracle's in the same round), its config names
// the policy, and the report gives the verdict against 1.2 ×.
func TestLBReport(t *testing.T) {
	kdl := SentinelKDL(&Contender{AdminAddr: "127.0.0.1:3"}, ProxyConfig{Upstreams: []string{"127.0.0.1:5"}, Policy: "peak_ewma"})
	if !strings.Contains(kdl, `load-balancing "peak_ewma"`) {
		t.Errorf("kdl lacks the policy:\n%s", kdl)
	}
	if strings.Contains(SentinelKDL(&Contender{}, ProxyConfig{Upstreams: []string{"127.0.0.1:5"}}), "load-balancing") {
		t.Error("a config without a policy names one")
	}
	res := &LBResult{Config: LBConfig{Rounds: 3, Duration: time.Second, Conns: 64, SlowLatency: 50 * time.Millisecond}}
	ms := time.Millisecond
	// Round by round, the oracle moves and the policies' ratios are 1.1
	// and 1.5 in every round, though their raw p99s overlap.
	for _, oracle := range []time.Duration{10 * ms, 20 * ms, 14 * ms} {
		var round []LBRound
		for _, f := range []float64{1, 1.1, 1.5} {
			round = append(round, LBRound{SlowShare: (f - 1) / 10, Run: Run{Result: LoadResult{Requests: 1000, Elapsed: time.Second,
				Latency: map[float64]time.Duration{99: time.Duration(float64(oracle) * f)}}}})
		}
		res.Rounds = append(res.Rounds, round)
	}
	s := res.Summaries()
	if len(s) != 3 || math.Abs(s[1].Ratio-1.1) > 1e-9 || math.Abs(s[2].Ratio-1.5) > 1e-9 || s[2].Min != s[2].Max || math.Abs(s[1].SlowShare-0.01) > 1e-9 {
		t.Fatalf("summaries %+v", s)
	}
	dir := t.TempDir()
	met, err := WriteLBReport(res, dir, "machine\n")
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "lb.md"))
	if met || !strings.Contains(string(md), "| peak_ewma | 15.4ms | 1.10 (1.10–1.10) | 1.00 % | 1000 | met |") || !strings.Contains(string(md), "| adaptive | 21ms | 1.50 (1.50–1.50) | 5.00 % | 1000 | not met (≤ 1.2) |") {
		t.Errorf("met %v, lb.md:\n%s", met, md)
	}
}

// TestQuickLB: the load-balancing scenario runs with real Sentinels and
// backends and writes its report (its figures are not asserted: on a
// shared 2-core machine a 2-second round's p99 moves by tens of per cent).
func TestQuickLB(t *testing.T) {
	o := quickOptions(t, "lb")
	o.Rounds, o.RunDuration = 2, 2*time.Second
	if err := run(context.Background(), o, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "lb.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| oracle |", "| peak_ewma |", "| adaptive |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("lb.md lacks %q:\n%s", want, md)
		}
	}
}

// TestSamplePrivate: the private memory of a process is sampled while a
// run lasts (this process's: RSS less its executable's pages), and a
// binary's page cache is dropped before it starts (a missing file is left
// to exec to report).
func TestSamplePrivate(t *testing.T) {
	var peak atomic.Int64
	stop := samplePrivate(os.Getpid(), &peak)
	time.Sleep(3 * privateSampleEvery)
	stop()
	u, err := ReadUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p <= 0 || p > u.PeakRSS {
		t.Errorf("peak private %d, want in (0, VmHWM %d]", p, u.PeakRSS)
	}
	evictPageCache(filepath.Join(t.TempDir(), "missing"))
	f := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(f, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	evictPageCache(f)
	if b, err := os.ReadFile(f); err != nil || string(b) != "x" {
		t.Errorf("file after eviction: %q %v", b, err)
	}
}
