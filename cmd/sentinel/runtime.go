package main

import (
	"runtime/debug"

	"go.uber.org/zap"
)

// defaultGCPercent is the garbage collector's target (GOGC) of `sentinel
// run` when the environment sets none: the heap may grow to 3 times the
// live heap between collections instead of Go's 2 times. A proxy's live
// heap is small (connections, pools, the config) and most of what it
// allocates dies with its request, so collecting half as often saves
// CPU (the mark phase and its write barriers) for about one live heap
// more of memory. The memory limit that `run` sets from the container's
// limit (Caddy's: 90 % of the cgroup's limit, or of the machine's memory)
// bounds that growth: near the limit the collector runs as often as
// needed, whatever GOGC says.
const defaultGCPercent = 200

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
