package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Ratio compares a contender with a baseline in one scenario.
type Ratio struct {
	// Scenario, Name ("sentinel/caddy") of the comparison.
	Scenario, Name string
	// Throughput is the ratio of median throughputs (higher is better).
	Throughput float64
	// P99 is the ratio of median p99 latencies (lower is better).
	P99 float64
	// CPU is the ratio of CPU seconds per request (lower is better).
	CPU float64
	// CPUPaired is the median over rounds of the per-round ratio of CPU
	// per request: runs of the same round are close in time, so slow
	// drifts of the machine's load cancel out.
	CPUPaired float64
	// P99Paired is the median over rounds of the per-round ratio of p99
	// latencies.
	P99Paired float64
	// RSS is the ratio of peak RSS (the highest VmHWM of the scenario).
	RSS float64
	// Private is the ratio of peak private memory (RSS less the
	// executable's and other file-backed pages, sampled, Run.PeakPrivate): what
	// the load drives, without the difference in binary size.
	Private float64
	// Target says whether Sentinel meets the goal against Caddy ("" when
	// the comparison has no target).
	Target string
}

// The goals of Sentinel against stock Caddy when both are loaded at the
// same time (issue 25): CPU per request, paired by round, at most
// concurrentCPUGoal (concurrentCPUGoal64k with 64 KiB responses); peak
// RSS at most concurrentRSSGoal; p99, paired by round, at most
// concurrentP99Goal (no regression beyond the noise).
const (
	concurrentCPUGoal    = 0.90
	concurrentCPUGoal64k = 1.00
	concurrentRSSGoal    = 1.30
	concurrentP99Goal    = 1.05
)

// Ratios computes sentinel/caddy, sentinel/nginx and caddy-control/caddy.
func Ratios(b *Bench) []Ratio {
	var out []Ratio
	for _, sc := range b.Scenarios {
		s := Summarize(b, sc.Name)
		for _, pair := range [][2]string{{"sentinel", "caddy"}, {"sentinel", "nginx"}, {"caddy-control", "caddy"}, {"sentinel-alt", "caddy"}, {"sentinel", "sentinel-alt"}} {
			a, base := s[pair[0]], s[pair[1]]
			if a == nil || base == nil {
				continue
			}
			r := Ratio{Scenario: sc.Name, Name: pair[0] + "/" + pair[1],
				Throughput: safeDiv(a.RPS, base.RPS), P99: safeDiv(float64(a.P99), float64(base.P99)),
				CPU: safeDiv(a.CPUPer10k, base.CPUPer10k), CPUPaired: paired(b, sc.Name, pair[0], pair[1], cpuPer10k),
				P99Paired: paired(b, sc.Name, pair[0], pair[1], func(r Run) float64 { return float64(r.Result.Latency[99]) }),
				RSS:       safeDiv(float64(a.PeakRSS), float64(base.PeakRSS)),
				Private:   safeDiv(float64(a.PeakPrivate), float64(base.PeakPrivate))}
			if pair == [2]string{"sentinel", "caddy"} {
				r.Target = "met"
				switch {
				case b.Concurrent:
					// Both share the machine: throughput is split between
					// them, CPU per request is what compares.
					goal := concurrentCPUGoal
					if strings.Contains(sc.Path, "65536") {
						goal = concurrentCPUGoal64k
					}
					if !(r.CPUPaired <= goal && r.RSS <= concurrentRSSGoal && r.P99Paired <= concurrentP99Goal) {
						r.Target = "missed"
					}
				case (sc.Rate == 0 && r.Throughput < 0.97) || r.P99 > 1.05:
					r.Target = "missed"
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// paired returns the median over rounds of a's metric divided by base's
// in the same round.
func paired(b *Bench, scenario, a, base string, metric func(Run) float64) float64 {
	per := map[int]map[string]float64{}
	for _, r := range b.Runs {
		if r.Scenario == scenario && (r.Contender == a || r.Contender == base) {
			if per[r.Round] == nil {
				per[r.Round] = map[string]float64{}
			}
			per[r.Round][r.Contender] = metric(r)
		}
	}
	var v []float64
	for _, m := range per {
		if m[base] > 0 && m[a] > 0 {
			v = append(v, m[a]/m[base])
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	return median(v)
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// fmtDur prints a latency in ms with 3 significant decimals.
func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// WriteReport writes results.md, results.csv, runs.csv and the PNG charts
// into dir; header is printed above the tables (machine, command).
func WriteReport(b *Bench, dir, header string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	var md strings.Builder
	md.WriteString("# Benchmark results\n\n" + header + "\n")
	md.WriteString("| Scenario | Contender | Tool | Rounds | req/s (median) | p50 ms | p99 ms | p99.9 ms | CPU s / 10k req | peak RSS MiB | peak private MiB | failed req |\n")
	md.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	rows := [][]string{{"scenario", "contender", "tool", "rounds", "rps", "p50_ms", "p99_ms", "p999_ms", "cpu_s_per_10k", "peak_rss_mib", "peak_private_mib", "errors"}}
	for _, sc := range b.Scenarios {
		s := Summarize(b, sc.Name)
		for _, n := range b.Contenders {
			v := s[n]
			if v == nil {
				continue
			}
			cpu, rss, private := "n/a", "n/a", "n/a"
			if n != "direct" {
				cpu = fmt.Sprintf("%.3f", v.CPUPer10k)
				rss = fmt.Sprintf("%.1f", float64(v.PeakRSS)/(1<<20))
				private = fmt.Sprintf("%.1f", float64(v.PeakPrivate)/(1<<20))
			}
			row := []string{sc.Name, n, v.Tool, strconv.Itoa(v.Rounds), fmt.Sprintf("%.0f", v.RPS), fmtDur(v.P50), fmtDur(v.P99), fmtDur(v.P999), cpu, rss, private, strconv.FormatInt(v.Errors, 10)}
			rows = append(rows, row)
			md.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	md.WriteString("\n## Ratios\n\n")
	if b.Concurrent {
		fmt.Fprintf(&md, "The contenders were loaded **at the same time** in every round (one load generator each), so the machine's noise is the same for all: read the columns paired by round (the median over rounds of the per-round ratio). Their throughputs share the machine and are not a target. Throughput: higher is better; p99, CPU per request and peak RSS: lower is better. Target for Sentinel/Caddy: CPU per request, paired, ≤ %.2f (≤ %.2f with 64 KiB responses), peak RSS ≤ %.2f, p99, paired, ≤ %.2f. The caddy-control/caddy row is stock Caddy against itself: the noise floor. Peak RSS is VmHWM, startup included; every server's binary is evicted from the page cache before it starts (as freshly deployed). Peak private is the highest RSS less the file-backed pages (mostly the executable's, which grow with the binary's size and not with the load), sampled every 50 ms during the runs: information, not part of the target.\n\n",
			concurrentCPUGoal, concurrentCPUGoal64k, concurrentRSSGoal, concurrentP99Goal)
	} else {
		md.WriteString("The contenders were loaded one after the other (alternating, the order rotating every round). Throughput: higher is better; p99, CPU per request and peak RSS: lower is better. Target for Sentinel/Caddy: throughput ≥ 0.97 (not for the fixed-rate run, whose throughput is set) and p99 ≤ 1.05. The caddy-control/caddy row is stock Caddy against itself: the noise floor.\n\n")
	}
	md.WriteString("| Scenario | Ratio | Throughput | p99 | p99, paired by round | CPU / request | CPU / request, paired by round | peak RSS | peak private | Target |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range Ratios(b) {
		fmt.Fprintf(&md, "| %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s |\n", r.Scenario, r.Name, r.Throughput, r.P99, r.P99Paired, r.CPU, r.CPUPaired, r.RSS, r.Private, r.Target)
	}
	md.WriteString("\n## Scenarios\n\n")
	for _, sc := range b.Scenarios {
		fmt.Fprintf(&md, "- `%s`: %s. Chart: [latency-%s.png](latency-%s.png)\n", sc.Name, sc.Desc, sc.Name, sc.Name)
	}
	md.WriteString("\nThroughput relative to stock Caddy: [throughput.png](throughput.png).\n")
	if len(b.Notes) > 0 {
		md.WriteString("\n## Notes\n\n")
		for _, n := range b.Notes {
			md.WriteString("- " + n + "\n")
		}
	}
	for _, sc := range b.Scenarios {
		if top, ok := b.Profiles[sc.Name]; ok {
			fmt.Fprintf(&md, "\n## CPU profile of Sentinel in %s\n\n```\n%s```\n", sc.Name, firstLines(top, 22))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("write results.md: %w", err)
	}
	if err := writeCSV(filepath.Join(dir, "results.csv"), rows); err != nil {
		return err
	}
	runs := [][]string{{"scenario", "contender", "round", "tool", "requests", "errors", "elapsed_s", "rps", "p50_ms", "p99_ms", "p999_ms", "cpu_s", "peak_rss_bytes", "peak_private_bytes"}}
	for _, r := range b.Runs {
		runs = append(runs, []string{r.Scenario, r.Contender, strconv.Itoa(r.Round), r.Result.Tool,
			strconv.FormatInt(r.Result.Requests, 10), strconv.FormatInt(r.Result.Errors, 10),
			fmt.Sprintf("%.3f", r.Result.Elapsed.Seconds()), fmt.Sprintf("%.1f", r.Result.RPS()),
			fmtDur(r.Result.Latency[50]), fmtDur(r.Result.Latency[99]), fmtDur(r.Result.Latency[99.9]),
			fmt.Sprintf("%.3f", r.CPU.Seconds()), strconv.FormatInt(r.PeakRSS, 10), strconv.FormatInt(r.PeakPrivate, 10)})
	}
	if err := writeCSV(filepath.Join(dir, "runs.csv"), runs); err != nil {
		return err
	}
	return writeCharts(b, dir)
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// writeCharts draws throughput.png (throughput relative to stock Caddy per
// scenario) and latency-<scenario>.png (latency by percentile).
func writeCharts(b *Bench, dir string) error {
	p := plot.New()
	p.Title.Text = "Throughput relative to stock Caddy (median of rounds)"
	p.Y.Label.Text = "req/s ÷ Caddy req/s"
	var names []string
	for _, sc := range b.Scenarios {
		names = append(names, sc.Name)
	}
	w := vg.Points(60 / float64(max(len(b.Contenders), 1)))
	for i, n := range b.Contenders {
		vals := make(plotter.Values, len(b.Scenarios))
		for j, sc := range b.Scenarios {
			s := Summarize(b, sc.Name)
			if s[n] != nil && s["caddy"] != nil && s["caddy"].RPS > 0 {
				vals[j] = s[n].RPS / s["caddy"].RPS
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("bar chart: %w", err)
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(b.Contenders)-1)/2)
		p.Add(bars)
		p.Legend.Add(n, bars)
	}
	p.Legend.Top = true
	p.NominalX(names...)
	if err := p.Save(9*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "throughput.png")); err != nil {
		return fmt.Errorf("save throughput.png: %w", err)
	}
	for _, sc := range b.Scenarios {
		s := Summarize(b, sc.Name)
		p := plot.New()
		p.Title.Text = "Latency by percentile: " + sc.Name
		p.X.Label.Text = "percentile"
		p.Y.Label.Text = "latency (ms)"
		var ticks []plot.Tick
		for _, q := range Quantiles {
			ticks = append(ticks, plot.Tick{Value: nines(q), Label: strconv.FormatFloat(q, 'f', -1, 64) + "%"})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		for i, n := range b.Contenders {
			v := s[n]
			if v == nil {
				continue
			}
			xys := make(plotter.XYs, len(Quantiles))
			for j, q := range Quantiles {
				xys[j] = plotter.XY{X: nines(q), Y: float64(v.Latency[q]) / float64(time.Millisecond)}
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("line: %w", err)
			}
			l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
			pts.Shape = plotutil.Shape(i)
			p.Add(l, pts)
			p.Legend.Add(n, l, pts)
		}
		p.Legend.Top, p.Legend.Left = true, true
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "latency-"+sc.Name+".png")); err != nil {
			return fmt.Errorf("save latency chart: %w", err)
		}
	}
	return nil
}

// nines maps a percentile to -log10(1-q): 90% → 1, 99% → 2, 99.9% → 3.
func nines(q float64) float64 { return -math.Log10(1 - q/100) }
