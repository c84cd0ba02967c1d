package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print its totals and the harness's quantiles (in
// microseconds) on one line.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LHRESULT %d %d %d %d", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
  for _, q in ipairs({50, 75, 90, 95, 99, 99.5, 99.9, 99.99}) do
    io.write(string.format(" %d", latency:percentile(q)))
  end
  io.write("\n")
end
`

// HaveTool reports whether an external program is on PATH.
func HaveTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// InstallPackages installs Debian packages with apt-get (as root only). It
// returns an error that says what is missing when it cannot.
func InstallPackages(ctx context.Context, pkgs ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root: cannot apt-get install %s", strings.Join(pkgs, " "))
	}
	if !HaveTool("apt-get") {
		return errors.New("apt-get not available")
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(out))
		}
		return nil
	}
	if err := run("update", "-qq"); err != nil {
		return err
	}
	return run(append([]string{"install", "-y", "-qq"}, pkgs...)...)
}

func tail(b []byte) string {
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return string(b)
}

// RunWrk runs wrk (HTTP/1.1, closed loop) against url.
func RunWrk(ctx context.Context, dir string, spec LoadSpec) (LoadResult, error) {
	script := filepath.Join(dir, "lh.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return LoadResult{}, fmt.Errorf("wrk script: %w", err)
	}
	threads := min(2, spec.Conns)
	secs := max(int(spec.Duration.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(spec.Conns),
		"-d", fmt.Sprintf("%ds", secs), "--timeout", "10s", "-s", script, spec.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return LoadResult{}, fmt.Errorf("wrk: %w: %s", err, tail(out))
	}
	return parseWrk(out)
}

// parseWrk reads the LHRESULT line of wrkScript.
func parseWrk(out []byte) (LoadResult, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5+len(Quantiles) || f[0] != "LHRESULT" {
			continue
		}
		n := make([]int64, len(f)-1)
		for i, s := range f[1:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return LoadResult{}, fmt.Errorf("wrk output %q: %w", sc.Text(), err)
			}
			n[i] = int64(v)
		}
		r := LoadResult{Tool: "wrk", Requests: n[0], Elapsed: time.Duration(n[1]) * time.Microsecond,
			Errors: n[2] + n[3], Latency: map[float64]time.Duration{}}
		for i, q := range Quantiles {
			r.Latency[q] = time.Duration(n[4+i]) * time.Microsecond
		}
		return r, nil
	}
	return LoadResult{}, fmt.Errorf("wrk: no result line in output: %s", tail(out))
}

// RunH2load runs h2load (HTTP/2 over TLS, closed loop) against url; the
// latencies come from its per-request log.
func RunH2load(ctx context.Context, dir string, spec LoadSpec) (LoadResult, error) {
	logFile := filepath.Join(dir, "h2load.log")
	secs := max(int(spec.Duration.Round(time.Second)/time.Second), 1)
	streams := max(spec.Streams, 1)
	cmd := exec.CommandContext(ctx, "h2load", "-t", strconv.Itoa(min(2, spec.Conns)), "-c", strconv.Itoa(spec.Conns),
		"-m", strconv.Itoa(streams), "-D", strconv.Itoa(secs), "--log-file="+logFile, spec.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return LoadResult{}, fmt.Errorf("h2load: %w: %s", err, tail(out))
	}
	elapsed, err := parseH2loadElapsed(out)
	if err != nil {
		return LoadResult{}, err
	}
	f, err := os.Open(logFile)
	if err != nil {
		return LoadResult{}, fmt.Errorf("h2load log: %w", err)
	}
	defer f.Close()
	defer os.Remove(logFile)
	r, err := parseH2loadLog(f)
	if err != nil {
		return LoadResult{}, err
	}
	r.Elapsed = elapsed
	return r, nil
}

// parseH2loadElapsed reads "finished in 10.00s, …" from h2load's output.
func parseH2loadElapsed(out []byte) (time.Duration, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "finished in "); ok {
			s, _, _ := strings.Cut(rest, ",")
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, fmt.Errorf("h2load elapsed %q: %w", s, err)
			}
			return d, nil
		}
	}
	return 0, fmt.Errorf("h2load: no 'finished in' line: %s", tail(out))
}

// parseH2loadLog reads h2load's --log-file: start µs, status, latency µs.
func parseH2loadLog(r interface{ Read([]byte) (int, error) }) (LoadResult, error) {
	h := newHist()
	res := LoadResult{Tool: "h2load"}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		status, err1 := strconv.Atoi(f[1])
		lat, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return res, fmt.Errorf("h2load log line %q", sc.Text())
		}
		res.Requests++
		if status < 200 || status >= 400 {
			res.Errors++
		}
		h.RecordValue(max(lat, 1))
	}
	if res.Requests == 0 {
		return res, errors.New("h2load: no request logged")
	}
	res.Latency = quantiles(h)
	return res, nil
}
