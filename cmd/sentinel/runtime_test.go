package main

import (
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestTuneRuntime: `sentinel run` sets GOGC to defaultGCPercent unless the
// environment sets GOGC, and logs which applies.
func TestTuneRuntime(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	core, logs := observer.New(zap.InfoLevel)
	tuneRuntime(func(string) (string, bool) { return "", false }, zap.New(core))
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("GOGC %d, want %d", got, defaultGCPercent)
	}
	tuneRuntime(func(k string) (string, bool) { return "150", k == "GOGC" }, zap.New(core))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with GOGC set in the environment, want it untouched (100)", got)
	}
	entries := logs.All()
	if len(entries) != 2 || entries[0].ContextMap()["GOGC"] != int64(defaultGCPercent) || entries[1].ContextMap()["GOGC"] != "150" {
		t.Fatalf("logged %v", entries)
	}
}
