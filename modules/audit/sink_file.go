package audit

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/logging"
)

func init() {
	caddy.RegisterModule(new(FileSink))
}

// FileSink writes the events as NDJSON to a file, rotated like Caddy's
// log files (lumberjack: roll_size_mb, roll_keep, roll_keep_days, …).
type FileSink struct {
	logging.FileWriter

	mu sync.Mutex
	w  io.WriteCloser
}

// CaddyModule returns the Caddy module information.
func (*FileSink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.audit.sinks.file", New: func() caddy.Module { return new(FileSink) }}
}

// Provision opens the file.
func (f *FileSink) Provision(ctx caddy.Context) error {
	if f.Filename == "" {
		return fmt.Errorf("audit file sink: filename is required")
	}
	if f.Mode == 0 {
		f.Mode = 0o600
	}
	if err := f.FileWriter.Provision(ctx); err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	w, err := f.OpenWriter()
	if err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	f.w = w
	return nil
}

// Deliver writes the batch, one event a line.
func (f *FileSink) Deliver(_ context.Context, batch [][]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	buf := make([]byte, 0, batchLen(batch))
	for _, l := range batch {
		buf = append(append(buf, l...), '\n')
	}
	if _, err := f.w.Write(buf); err != nil {
		return fmt.Errorf("writing %s: %w", f.Filename, err)
	}
	return nil
}

// Cleanup closes the file.
func (f *FileSink) Cleanup() error {
	if f.w == nil {
		return nil
	}
	return f.w.Close()
}

func batchLen(batch [][]byte) int {
	n := 0
	for _, l := range batch {
		n += len(l) + 1
	}
	return n
}

// Interface guards.
var (
	_ Sink               = (*FileSink)(nil)
	_ caddy.Provisioner  = (*FileSink)(nil)
	_ caddy.CleanerUpper = (*FileSink)(nil)
)
