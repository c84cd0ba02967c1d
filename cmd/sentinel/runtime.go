package main

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"
)

// defaultGCPercent is the garbage collector's target (GOGC) of `sentinel
// run` when the environment sets none and the live heap is small: the heap
// may grow to 3 times the live heap between collections instead of Go's 2
// times. A proxy's live heap is small (connections, pools, the config)
// and most of what it allocates dies with its request, so collecting half
// as often saves CPU (the mark phase and its write barriers): 3–6 % per
// request against GOGC 100 in the load harness (docs/runtime.md).
// gcExtraHeap bounds what that costs: as the live heap grows, the target
// falls (gcPercentFor) so that the heap's growth between collections
// exceeds Go's default by at most gcExtraHeap / 2, down to Go's 100 from a
// live heap of gcExtraHeap. The memory limit that `run` sets from the
// container's limit (Caddy's: 90 % of the cgroup's limit, or of the
// machine's memory) bounds it further: near the limit the collector runs
// as often as needed, whatever GOGC says.
const (
	defaultGCPercent = 200
	gcExtraHeap      = 64 << 20
	// gcRetuneEvery is how often the target follows the live heap.
	gcRetuneEvery = time.Second
)

// gcPercentFor is the garbage collector target for a live heap of live
// bytes: defaultGCPercent up to gcExtraHeap / 2, then 100 × gcExtraHeap /
// live (the growth over GOGC 100's stays below gcExtraHeap / 2), never
// below 100.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return defaultGCPercent
	}
	p := 100 * uint64(gcExtraHeap) / live
	return int(min(max(p, 100), defaultGCPercent))
}

// liveHeap reads the heap that was live after the last collection.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// tuneRuntime sets Sentinel's garbage collector target unless GOGC is set
// in the environment (which the Go runtime has already applied, "off"
// included), logs the setting, and returns a function that stops
// following the live heap (nil with GOGC from the environment): every
// gcRetuneEvery the target becomes gcPercentFor the live heap.
func tuneRuntime(lookupEnv func(string) (string, bool), logger *zap.Logger) (stop func()) {
	if v, ok := lookupEnv("GOGC"); ok {
		logger.Info("garbage collector target from the environment", zap.String("GOGC", v))
		return nil
	}
	cur := gcPercentFor(liveHeap())
	debug.SetGCPercent(cur)
	logger.Info("garbage collector target: Sentinel's default (set GOGC to override)", zap.Int("GOGC", cur),
		zap.Int("max_GOGC", defaultGCPercent), zap.Int64("lowered_above_live_heap_bytes", gcExtraHeap/2))
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(gcRetuneEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			// Change it only on a move of 10 points or to a bound.
			if p := gcPercentFor(liveHeap()); p != cur && (p-cur >= 10 || cur-p >= 10 || p == 100 || p == defaultGCPercent) {
				debug.SetGCPercent(p)
				logger.Debug("garbage collector target follows the live heap", zap.Int("GOGC", p))
				cur = p
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// Soft memory limit of `sentinel adapt` (see limitBatchMemory):
// batchMemoryBase plus batchMemoryPerByte times the configuration's size.
// The adapter's live heap peaks at about 3.7 times the size of a large
// configuration (its text, the upstream blocks' stubs, the encoded routes:
// docs/benchmarks.md), so with Go's default GOGC the heap may reach twice
// that between collections: 780 MiB of RSS for a 68 MB file of 100,000
// routes; with this limit (325 MiB for that file) 386–390 MiB. The limit makes the collector run as often as needed near it
// instead, for some CPU. Not for `validate` (nor `adapt --validate`):
// provisioning the configuration holds far more (about 45 times the
// file's size for 10,000 routes), and a limit below the live heap makes
// the collector run back to back (3 times the CPU, measured).
const (
	batchMemoryBase    = 128 << 20
	batchMemoryPerByte = 3
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
