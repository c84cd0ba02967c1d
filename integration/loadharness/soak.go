package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SoakConfig configures a soak run.
type SoakConfig struct {
	// Bins are the proxy binaries.
	Bins Binaries
	// WorkDir holds configs and logs.
	WorkDir string
	// Duration of the whole soak.
	Duration time.Duration
	// Sample is the interval between samples of RSS, goroutines and fds.
	Sample time.Duration
	// ReloadEvery is the interval between config reloads.
	ReloadEvery time.Duration
	// ChangeEvery is the interval between control-plane upstream changes.
	ChangeEvery time.Duration
	// Rate is the constant request rate.
	Rate float64
	// Conns is the number of client connections.
	Conns int
	// Logf reports progress.
	Logf func(string, ...any)
}

// SoakSample is one sample of the Sentinel process.
type SoakSample struct {
	// At is the time since the start.
	At time.Duration
	// RSS is VmRSS in bytes.
	RSS int64
	// Goroutines is the count from /debug/pprof/goroutine.
	Goroutines int
	// FDs counts open file descriptors.
	FDs int
	// OK and Fail are the request counts so far.
	OK, Fail int64
}

// Growth is the growth of one metric after warm-up.
type Growth struct {
	// Metric is "rss", "goroutines" or "fds".
	Metric string
	// Base is the median of the first samples after warm-up.
	Base float64
	// End is the median of the last samples.
	End float64
	// Slack is the absolute growth tolerated whatever the ratio (noise of
	// small numbers).
	Slack float64
}

// Pct returns the relative growth in percent.
func (g Growth) Pct() float64 {
	if g.Base == 0 {
		return 0
	}
	return (g.End/g.Base - 1) * 100
}

// Failed reports growth over 10 % beyond the slack.
func (g Growth) Failed() bool { return g.End > g.Base*1.10 && g.End-g.Base > g.Slack }

// SoakResult is the outcome of a soak.
type SoakResult struct {
	// Config is what ran.
	Config SoakConfig
	// Samples in time order.
	Samples []SoakSample
	// Reloads and Changes count the config reloads and API changes done.
	Reloads, Changes int
	// OK and Fail count requests; Status the answers by status code.
	OK, Fail int64
	// Status counts answers by status (0: transport error).
	Status map[int]int64
	// Growth of each metric after warm-up.
	Growth []Growth
	// Failures lists why the soak failed (empty: passed).
	Failures []string
}

// newToken returns a random bearer token.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// RunSoak runs Sentinel under constant load with reloads and control-plane
// changes, and checks for growth and failed requests.
func RunSoak(ctx context.Context, cfg SoakConfig) (*SoakResult, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if _, err := RaiseFileLimit(); err != nil {
		logf("warning: %v", err)
	}
	if !SetMigrateReq() {
		logf("warning: net.ipv4.tcp_migrate_req is not 1 (needs root, Linux >= 5.14): reloads may reset queued connections")
	}
	var bes []*Backend
	defer func() {
		for _, b := range bes {
			b.Close()
		}
	}()
	for range 3 {
		b, err := StartBackend("", BackendOptions{BodySize: 512})
		if err != nil {
			return nil, err
		}
		bes = append(bes, b)
	}
	cert, key, err := WriteCert(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	c, err := NewContender("sentinel-soak", KindSentinel, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	pc := ProxyConfig{Upstreams: []string{bes[0].Addr, bes[1].Addr}, CertFile: cert, KeyFile: key,
		HealthCheck: true, APIToken: newToken()}
	if err := c.Start(cfg.Bins, pc); err != nil {
		return nil, err
	}
	defer c.Stop()

	res := &SoakResult{Config: cfg}
	live := &Counters{}
	loadDone := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := RunGo(ctx, LoadSpec{URL: "http://" + c.HTTPAddr + "/", Conns: cfg.Conns, Duration: cfg.Duration,
			Rate: cfg.Rate, Live: live})
		loadDone <- err
	}()
	sample := time.NewTicker(cfg.Sample)
	defer sample.Stop()
	reload := time.NewTicker(cfg.ReloadEvery)
	defer reload.Stop()
	change := time.NewTicker(cfg.ChangeEvery)
	defer change.Stop()
	api := &apiClient{base: "http://" + c.APIAddr + "/api/v1", token: pc.APIToken}
	third := bes[2].Addr
	step := 0
	for {
		select {
		case err := <-loadDone:
			if err != nil {
				return nil, err
			}
			res.OK, res.Fail, res.Status = live.OK.Load(), live.Fail.Load(), live.Status()
			if res.Fail > 0 {
				res.Failures = append(res.Failures, fmt.Sprintf("%d failed requests (by status: %v; last error: %s)", res.Fail, res.Status, live.LastError()))
			}
			// The end state is a sample too: a run whose last tick fell
			// just after the load ended still has it.
			if s, err := sampleProcess(c); err == nil {
				s.At, s.OK, s.Fail = time.Since(start), res.OK, res.Fail
				res.Samples = append(res.Samples, s)
			}
			res.Growth = growth(res.Samples)
			if res.Growth == nil {
				res.Failures = append(res.Failures, fmt.Sprintf("only %d samples: growth cannot be judged (run at least 6 sample intervals)", len(res.Samples)))
			}
			for _, g := range res.Growth {
				if g.Failed() {
					res.Failures = append(res.Failures, fmt.Sprintf("%s grew %.1f%% after warm-up (%.0f -> %.0f)", g.Metric, g.Pct(), g.Base, g.End))
				}
			}
			if c.Proc.Exited() {
				res.Failures = append(res.Failures, "sentinel exited: "+c.Proc.LogTail())
			}
			return res, nil
		case <-sample.C:
			s, err := sampleProcess(c)
			if err != nil {
				return nil, err
			}
			s.At, s.OK, s.Fail = time.Since(start), live.OK.Load(), live.Fail.Load()
			res.Samples = append(res.Samples, s)
			logf("soak %6s rss %6.1f MiB goroutines %4d fds %4d ok %d failed %d", s.At.Round(time.Second), float64(s.RSS)/(1<<20), s.Goroutines, s.FDs, s.OK, s.Fail)
		case <-reload.C:
			pc.Variant++
			if err := c.WriteConfig(pc); err != nil {
				return nil, err
			}
			if err := LoadConfig(c); err != nil {
				res.Failures = append(res.Failures, err.Error())
			} else {
				res.Reloads++
			}
		case <-change.C:
			var err error
			switch step % 3 {
			case 0:
				err = api.do(http.MethodPost, "/upstreams/backend/targets", fmt.Sprintf(`{"address":%q}`, third))
			case 1:
				err = api.do(http.MethodPost, "/upstreams/backend/targets/"+url.PathEscape(third)+"/drain", "")
			case 2:
				err = api.do(http.MethodDelete, "/upstreams/backend/targets/"+url.PathEscape(third), "")
			}
			step++
			if err != nil {
				res.Failures = append(res.Failures, err.Error())
			} else {
				res.Changes++
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// LoadConfig posts the contender's KDL file to Caddy's admin /load.
func LoadConfig(c *Contender) error {
	b, err := os.ReadFile(c.ConfigPath)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	resp, err := http.Post("http://"+c.AdminAddr+"/load", "text/kdl", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reload: %s: %s", resp.Status, msg)
	}
	return nil
}

// apiClient calls Sentinel's control-plane API.
type apiClient struct {
	base, token string
}

func (a *apiClient) do(method, path, body string) error {
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("api request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("api %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("api %s %s: %s: %s", method, path, resp.Status, msg)
	}
	return nil
}

// sampleProcess reads RSS, fds and goroutines of a Sentinel or Caddy.
func sampleProcess(c *Contender) (SoakSample, error) {
	u, err := ReadUsage(c.Proc.PID())
	if err != nil {
		return SoakSample{}, err
	}
	g, err := Goroutines(c.AdminAddr)
	if err != nil {
		return SoakSample{}, err
	}
	return SoakSample{RSS: u.RSS, FDs: u.FDs, Goroutines: g}, nil
}

// Goroutines reads the goroutine count from Caddy's admin
// /debug/pprof/goroutine?debug=1 ("goroutine profile: total N").
func Goroutines(admin string) (int, error) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, fmt.Errorf("goroutines: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "goroutine profile: total "); ok {
			return strconv.Atoi(strings.TrimSpace(rest))
		}
	}
	return 0, fmt.Errorf("goroutines: unexpected answer (%s)", resp.Status)
}

// growth compares the first samples after warm-up (the first third of the
// run) with the last ones.
func growth(s []SoakSample) []Growth {
	if len(s) < 6 {
		return nil
	}
	post := s[len(s)/3:]
	k := max(len(post)/4, 1)
	med := func(ss []SoakSample, f func(SoakSample) float64) float64 {
		var v []float64
		for _, x := range ss {
			v = append(v, f(x))
		}
		return median(v)
	}
	mk := func(name string, slack float64, f func(SoakSample) float64) Growth {
		return Growth{Metric: name, Base: med(post[:k], f), End: med(post[len(post)-k:], f), Slack: slack}
	}
	return []Growth{
		mk("rss", 8<<20, func(x SoakSample) float64 { return float64(x.RSS) }),
		mk("goroutines", 20, func(x SoakSample) float64 { return float64(x.Goroutines) }),
		mk("fds", 20, func(x SoakSample) float64 { return float64(x.FDs) }),
	}
}

// WriteSoakReport writes soak.md and soak.csv into dir.
func WriteSoakReport(r *SoakResult, dir, header string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Soak results\n\n%s\nDuration %s at %.0f req/s over %d connections; config reload every %s (%d done), control-plane upstream change every %s (%d done).\n\n",
		header, r.Config.Duration, r.Config.Rate, r.Config.Conns, r.Config.ReloadEvery, r.Reloads, r.Config.ChangeEvery, r.Changes)
	fmt.Fprintf(&md, "Requests: %d succeeded, %d failed.\n\n", r.OK, r.Fail)
	md.WriteString("| Metric | after warm-up | at the end | growth | verdict |\n|---|---|---|---|---|\n")
	for _, g := range r.Growth {
		verdict := "ok"
		if g.Failed() {
			verdict = "FAILED"
		}
		base, end := fmt.Sprintf("%.0f", g.Base), fmt.Sprintf("%.0f", g.End)
		if g.Metric == "rss" {
			base, end = fmt.Sprintf("%.1f MiB", g.Base/(1<<20)), fmt.Sprintf("%.1f MiB", g.End/(1<<20))
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %+.1f%% | %s |\n", g.Metric, base, end, g.Pct(), verdict)
	}
	if len(r.Failures) == 0 {
		md.WriteString("\nVerdict: PASSED.\n")
	} else {
		md.WriteString("\nVerdict: FAILED:\n\n")
		for _, f := range r.Failures {
			md.WriteString("- " + f + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("write soak.md: %w", err)
	}
	rows := [][]string{{"seconds", "rss_bytes", "goroutines", "fds", "ok", "failed"}}
	for _, s := range r.Samples {
		rows = append(rows, []string{fmt.Sprintf("%.1f", s.At.Seconds()), strconv.FormatInt(s.RSS, 10),
			strconv.Itoa(s.Goroutines), strconv.Itoa(s.FDs), strconv.FormatInt(s.OK, 10), strconv.FormatInt(s.Fail, 10)})
	}
	return writeCSV(filepath.Join(dir, "soak.csv"), rows)
}
