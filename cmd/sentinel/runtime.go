package main

import (
	"runtime/debug"

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
