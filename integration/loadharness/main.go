// Command loadharness benchmarks, soaks and breaks Sentinel against stock
// Caddy of the same version and NGINX, on loopback, with one command:
//
//	go run ./integration/loadharness -mode bench|soak|chaos|lb [-quick] [-out bench/results/<date>]
//
// bench: every scenario (HTTP/1.1 small, HTTP/2 over TLS, 64 KiB, 1,000
// connections, fixed rate) against the backend directly, stock Caddy, a
// second stock Caddy (the control), Sentinel and NGINX, several rounds in
// alternating order (or, with -concurrent, stock Caddy and Sentinel loaded
// at the same time in every round); writes results.md, results.csv,
// runs.csv and PNG charts. soak: constant load on Sentinel with reloads and control-plane
// changes, sampling RSS, goroutines and file descriptors; fails on growth
// or a failed request. chaos: backend crash, all backends down, 5xx
// backend, reload storm; each asserts its outcome. lb: one of four
// backends 50 ms slow with the proxy saturated, the p99 of Sentinel's
// peak_ewma and adaptive policies against an oracle pool without the slow
// backend (issue 25's target: ≤ 1.2 ×).
//
// See docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadharness:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadharness:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line.
func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("loadharness", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.Mode, "mode", "bench", "bench, soak, chaos or lb")
	fs.BoolVar(&o.Quick, "quick", false, "a run of seconds (what CI runs)")
	fs.StringVar(&o.Out, "out", "", "results folder (default bench/results/<date>, or a temp dir with -quick)")
	fs.IntVar(&o.Rounds, "rounds", 0, "bench rounds per scenario (default 5; 3 with -quick)")
	fs.DurationVar(&o.RunDuration, "run", 0, "duration of one measured bench run (default 10s, 2s with -quick)")
	fs.DurationVar(&o.Duration, "duration", 0, "soak duration (default 3m, 10s with -quick; -duration 1h for the one-hour soak)")
	fs.Float64Var(&o.Rate, "rate", 0, "request rate of the fixed-rate bench scenario (default 2000/s, 500/s with -quick)")
	fs.StringVar(&o.Scenarios, "scenarios", "", "comma-separated bench scenarios (default all)")
	fs.StringVar(&o.Contenders, "contenders", "", "comma-separated bench contenders (default direct,caddy,caddy-control,sentinel,nginx; caddy,sentinel with -concurrent)")
	fs.BoolVar(&o.Concurrent, "concurrent", false, "bench: load the contenders at the same time in every round (same noise for all; default scenarios h1-small,h2-tls,h1-64k)")
	fs.BoolVar(&o.External, "external", true, "use wrk and h2load when installed (else the Go load generator)")
	fs.BoolVar(&o.Install, "install", os.Geteuid() == 0, "apt-get install nginx, wrk and nghttp2-client when missing (root only)")
	fs.BoolVar(&o.Profile, "profile", true, "CPU-profile Sentinel where it trails stock Caddy")
	fs.Func("sentinel-env", "KEY=value set in Sentinel's environment only (repeatable), e.g. GOGC=100 for Go's default", func(s string) error {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=value, got %q", s)
		}
		o.SentinelEnv = append(o.SentinelEnv, s)
		return nil
	})
	fs.StringVar(&o.SentinelAlt, "sentinel-alt", "", "a second Sentinel binary, run as the contender sentinel-alt (added to -contenders), to compare two builds in the same run")
	fs.StringVar(&o.Cache, "cache", "", "where built binaries are cached (default <user cache dir>/sentinel-loadharness)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return withDefaults(o)
}

// withDefaults fills in what depends on other flags and checks the mode.
func withDefaults(o options) (options, error) {
	if o.Contenders == "" {
		o.Contenders = "direct,caddy,caddy-control,sentinel,nginx"
		if o.Concurrent {
			o.Contenders = "caddy,sentinel"
		}
	}
	if o.SentinelAlt != "" && !slices.Contains(strings.Split(o.Contenders, ","), "sentinel-alt") {
		o.Contenders += ",sentinel-alt"
	}
	switch o.Mode {
	case "bench", "soak", "chaos", "lb":
	default:
		return o, fmt.Errorf("unknown -mode %q (bench, soak, chaos or lb)", o.Mode)
	}
	return o, nil
}
