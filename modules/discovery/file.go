package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(File{})
}

// MaxFileSize is the largest targets file read (1 MiB).
const MaxFileSize = 1 << 20

// File is the discovery `file`: a file listing the targets, watched
// (its folder's events read it again at once) and read again every watch
// interval besides (a file replaced by a rename, as tools and
// Kubernetes' ConfigMap volumes do, is seen as well as one written in
// place, and so is a change the watcher missed). A file that is missing,
// unreadable or invalid keeps the last good set.
//
// The format (ParseTargets): one target per line, `host:port`, optionally
// followed by `weight=N` (or a bare number, the weight); blank lines and
// text after `#` are ignored.
//
//	# api backends
//	10.0.0.1:8080
//	10.0.0.2:8080 weight=3
type File struct {
	// Path is the file.
	Path string `json:"path,omitempty"`
	// WatchInterval is how often the file is read (default 5s).
	WatchInterval caddy.Duration `json:"watch_interval,omitempty"`

	loop *loop
}

// CaddyModule returns the Caddy module information.
func (File) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.file", New: func() caddy.Module { return new(File) }}
}

// Provision sets up the metrics.
func (f *File) Provision(ctx caddy.Context) error {
	if f.Path == "" {
		return errors.New("file: path is required")
	}
	var err error
	f.loop, err = newLoop(ctx, "file")
	return err
}

// Discover reads the file when its folder changes and every watch
// interval until ctx ends.
func (f *File) Discover(ctx context.Context, upstream string, publish func([]registry.TargetSpec)) {
	f.loop.bind(upstream)
	wake := make(chan struct{}, 1)
	stop := f.watch(wake)
	defer stop()
	f.loop.pollWake(ctx, interval(f.WatchInterval, 5*time.Second), f.lookup, publish, wake)
}

// watch watches the file's folder (the file itself may be replaced) and
// signals wake at each event; without a watcher (none available, the
// folder missing), the interval alone reads the file. stop ends the
// watch and waits for its goroutine.
func (f *File) watch(wake chan<- struct{}) (stop func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		f.loop.logger.Debug("no file watcher; the watch interval alone reads the targets file", zap.Error(err))
		return func() {}
	}
	if err := w.Add(filepath.Dir(f.Path)); err != nil {
		f.loop.logger.Debug("no file watcher; the watch interval alone reads the targets file", zap.Error(err))
		_ = w.Close()
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return func() {
		_ = w.Close()
		<-done
	}
}

// lookup reads the file once. Errors name the file and the line, never
// its content beyond the offending token.
func (f *File) lookup(context.Context) ([]registry.TargetSpec, time.Duration, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, 0, fmt.Errorf("targets file: %w", err)
	}
	defer fh.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(fh, MaxFileSize+1)); err != nil {
		return nil, 0, fmt.Errorf("targets file %s: %w", f.Path, err)
	}
	if buf.Len() > MaxFileSize {
		return nil, 0, fmt.Errorf("targets file %s: larger than %d bytes", f.Path, MaxFileSize)
	}
	ts, err := ParseTargets(buf.Bytes())
	if err != nil {
		return nil, 0, fmt.Errorf("targets file %s: %w", f.Path, err)
	}
	return ts, 0, nil
}

// ParseTargets parses a targets file (see File). An error names the line
// (1-based) and what is wrong with it, without quoting the file (a path
// set to the wrong file must not leak that file into logs).
func ParseTargets(data []byte) ([]registry.TargetSpec, error) {
	var ts []registry.TargetSpec
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 2 {
			return nil, fmt.Errorf("line %d: expected host:port and an optional weight, found %d fields", n, len(fields))
		}
		t := registry.TargetSpec{Address: fields[0], Weight: 1}
		if err := registry.ValidateAddress(t.Address); err != nil {
			return nil, fmt.Errorf("line %d: the address %s", n, reason(err))
		}
		if len(fields) == 2 {
			w, err := strconv.Atoi(strings.TrimPrefix(fields[1], "weight="))
			if err != nil {
				return nil, fmt.Errorf("line %d: the weight must be a number (weight=N)", n)
			}
			if err := registry.ValidateWeight(w); err != nil {
				return nil, fmt.Errorf("line %d: the weight %s", n, reason(err))
			}
			t.Weight = w
		}
		if prev, dup := seen[t.Address]; dup {
			return nil, fmt.Errorf("line %d: the target of line %d again", n, prev)
		}
		seen[t.Address] = n
		ts = append(ts, t)
	}
	return ts, nil
}

// Interface guards
var (
	_ caddy.Provisioner   = (*File)(nil)
	_ registry.Discoverer = (*File)(nil)
)

// reason is why a value is invalid, without the value.
func reason(err error) string {
	var inv *registry.InvalidError
	if errors.As(err, &inv) {
		return inv.Reason
	}
	return "is invalid"
}
