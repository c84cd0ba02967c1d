// Package audittest runs a real sentinel_audit app writing to a file
// sink, for the tests of the packages that emit audit events.
package audittest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/modules/audit"
)

// Start provisions and starts an audit app (skipping skipKinds) with a
// file sink in a temporary directory; it is stopped when the test ends.
// Read waits until at least n events were written (5 s at most) and
// returns all written so far.
func Start(tb testing.TB, skipKinds ...string) (app *audit.App, read func(n int) []audit.Event) {
	tb.Helper()
	dir := tb.TempDir()
	file := filepath.Join(dir, "audit.log")
	raw, _ := json.Marshal(map[string]any{"type": "file", "filename": file})
	a := &audit.App{SpoolDir: dir, SkipKinds: skipKinds, Sinks: []*audit.SinkConfig{{SinkRaw: raw}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := a.Provision(ctx); err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := a.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Stop(); _ = a.Cleanup(); cancel() })
	return a, func(n int) []audit.Event {
		tb.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(file)
			var lines []string
			if s := strings.TrimSpace(string(b)); s != "" {
				lines = strings.Split(s, "\n")
			}
			if len(lines) >= n {
				out := make([]audit.Event, len(lines))
				for i, l := range lines {
					if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
						tb.Fatal(err)
					}
				}
				return out
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%d audit events written, want %d:\n%s", len(lines), n, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
