package main

import (
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"
)

// defaultGCPercent is the garbage collector's target (GOGC) of `sentinel
// run` when the environment sets none: the heap may grow to 2.5 times the
// live heap between collections instead of Go's 2 times. A proxy's live
// heap is small (connections, pools, the config) and most of what it
// allocates dies with its request, so collecting a third less often saves
// CPU (the mark phase and its write barriers) for about half a live heap
// more of memory. (200 saved more CPU, but took Sentinel's peak RSS in
// the load harness to 1.37 × stock Caddy's, above issue 25's 1.3 ×; 150
// kept it at 1.24–1.29 × in most runs: docs/runtime.md.) The memory limit that `run` sets from the container's
// limit (Caddy's: 90 % of the cgroup's limit, or of the machine's memory)
// bounds that growth: near the limit the collector runs as often as
// needed, whatever GOGC says.
const defaultGCPercent = 150

// tuneRuntime sets Sentinel's garbage collector target unless GOGC is set
// in the environment (which the Go runtime has already applied, "off"
// included), and logs the setting.
func tuneRuntime(lookupEnv func(string) (string, bool), logger *zap.Logger) {
	if v, ok := lookupEnv("GOGC"); ok {
		logger.Info("garbage collector target from the environment", zap.String("GOGC", v))
		return
	}
	debug.SetGCPercent(defaultGCPercent)
	logger.Info("garbage collector target: Sentinel's default (set GOGC to override)", zap.Int("GOGC", defaultGCPercent))
}

// Soft memory limit of `sentinel adapt` (see limitBatchMemory):
// batchMemoryBase plus batchMemoryPerByte times the configuration's size.
// The adapter's live heap peaks at about 4.3 times the size of a large
// configuration (its text, the parsed blocks' stubs, the encoded routes:
// docs/benchmarks.md), so with Go's default GOGC the heap may reach twice
// that between collections: 780 MiB of RSS for a 68 MB file of 100,000
// routes. The limit makes the collector run as often as needed near it
// instead, for some CPU. Not for `validate` (nor `adapt --validate`):
// provisioning the configuration holds far more (about 45 times the
// file's size for 10,000 routes), and a limit below the live heap makes
// the collector run back to back (3 times the CPU, measured).
const (
	batchMemoryBase    = 128 << 20
	batchMemoryPerByte = 4
)

// batchMemoryLimit is the soft memory limit of a batch command on a
// configuration of size bytes: 90 % of the container's limit (cgroup, 0
// when there is none), as Caddy sets for `run`, or the job's
// (batchMemoryBase, batchMemoryPerByte) when jobSized and lower. ok is
// false when there is neither.
func batchMemoryLimit(size int, cgroup uint64, jobSized bool) (limit int64, ok bool) {
	if cgroup > 0 {
		limit, ok = int64(float64(cgroup)*0.9), true
	}
	if job := int64(batchMemoryBase) + batchMemoryPerByte*int64(size); jobSized && (!ok || job < limit) {
		limit, ok = job, true
	}
	return limit, ok
}

// limitBatchMemory sets the soft memory limit of a batch command (adapt,
// validate; not run, whose limit Caddy sets) on a configuration of size
// bytes (batchMemoryLimit), unless GOMEMLIMIT is set in the environment,
// and returns the function that restores the previous limit (the
// commands run in-process in tests).
func limitBatchMemory(lookupEnv func(string) (string, bool), size int, jobSized bool) (undo func()) {
	if _, ok := lookupEnv("GOMEMLIMIT"); ok {
		return func() {}
	}
	cgroup, _ := memlimit.FromCgroup() // 0 outside a container or where unsupported
	limit, ok := batchMemoryLimit(size, cgroup, jobSized)
	if !ok {
		return func() {}
	}
	prev := debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(prev) }
}
