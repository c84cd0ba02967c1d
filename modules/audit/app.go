// Package audit is Sentinel's audit trail: the `sentinel_audit` app
// receives security events (agent decisions, WAF events, WASM blocks,
// rate-limit rejections, control-plane changes, config loads) through
// Emit, which writes them to a bounded on-disk spool per sink (never
// waiting on a sink: an event is durable against a process crash once
// Emit returned), and ships them to sinks (file, Kafka, S3, GCS,
// Elasticsearch, Datadog) at least once, with retries. docs/audit.md
// documents the event schema and the durability contract.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/logring"
)

func init() {
	caddy.RegisterModule(new(App))
}

// AppName is the app's module id.
const AppName = "sentinel_audit"

// ErrRefused is returned by Emit when the event cannot be recorded and a
// sink's policy is fail_closed: the caller must not serve the request
// unaudited (answer 503).
var ErrRefused = errors.New("audit: event refused (spool full, fail_closed)")

// syncInterval is how often the spools' written lines are synced to
// disk (fsync): the bound of what a machine crash or power loss can
// lose. A process crash loses nothing Emit returned for.
const syncInterval = time.Second

// App is the `sentinel_audit` app: the audit event bus and its sinks.
type App struct {
	// SpoolDir is the directory of the sinks' spools (one directory per
	// sink, named after it). Default: Caddy's data directory + `/audit`.
	SpoolDir string `json:"spool_dir,omitempty"`
	// BufferSize is accepted and has no effect: Emit writes each event
	// to the spools itself, so that an event is durable (survives a
	// process crash) once Emit returned. Deprecated.
	BufferSize int `json:"buffer_size,omitempty"`
	// SkipKinds are event kinds not recorded (e.g. `waf`).
	SkipKinds []string `json:"skip_kinds,omitempty"`
	// SkipBlocked drops the events of requests refused (actions `block`
	// and `reject`); KDL `log-blocked #false`.
	SkipBlocked bool `json:"skip_blocked,omitempty"`
	// Sinks are where the events go; each has its own spool and
	// delivery.
	Sinks []*SinkConfig `json:"sinks,omitempty"`

	skip     map[string]bool
	refusing atomic.Bool
	refused  atomic.Int64 // refused while refusing
	ring     *logring.Ring
	stop     chan struct{}
	wg       sync.WaitGroup
	started  bool
	log      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: AppName, New: func() caddy.Module { return new(App) }}
}

// Lookup returns the configured audit app, or nil when audit is off
// (no `sentinel_audit` app). Modules call it in Provision and keep the
// result; Emit on a nil *App does nothing.
func Lookup(ctx caddy.Context) (*App, error) {
	app, err := ctx.AppIfConfigured(AppName)
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s app: %w", AppName, err)
	}
	return app.(*App), nil
}

// Provision opens the sinks and their spools.
func (a *App) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	if a.SpoolDir == "" {
		a.SpoolDir = filepath.Join(caddy.AppDataDir(), "audit")
	}
	a.skip = make(map[string]bool, len(a.SkipKinds))
	for _, k := range a.SkipKinds {
		a.skip[k] = true
	}
	a.ring = logring.Audit
	a.stop = make(chan struct{})
	names := make(map[string]bool, len(a.Sinks))
	for i, sc := range a.Sinks {
		if err := sc.provision(ctx, a, i); err != nil {
			return err
		}
		if names[sc.Name] {
			return fmt.Errorf("audit sinks[%d]: duplicate name %q (each sink has its own spool directory)", i, sc.Name)
		}
		names[sc.Name] = true
	}
	return registerMetrics(ctx, a)
}

// Start starts the spools' syncer and the sinks' deliveries.
func (a *App) Start() error {
	a.started = true
	a.wg.Add(1)
	go a.syncSpools()
	for _, sc := range a.Sinks {
		a.wg.Add(1)
		go sc.deliver(a.stop, &a.wg)
	}
	return nil
}

// Stop syncs the spools and stops the deliveries. Undelivered events
// stay in the spools for the next start.
func (a *App) Stop() error {
	if !a.started {
		return nil
	}
	a.started = false
	close(a.stop)
	a.wg.Wait()
	return nil
}

// Cleanup closes the sinks and releases the spools.
func (a *App) Cleanup() error {
	var errs []error
	for _, sc := range a.Sinks {
		errs = append(errs, sc.cleanup())
	}
	return errors.Join(errs...)
}

// Refusing reports whether events are refused because a fail_closed
// sink's spool is full: audit-critical routes answer 503 meanwhile.
func (a *App) Refusing() bool { return a != nil && a.refusing.Load() }

// Wants reports whether events of kind (and, with blocked, of a refused
// request) are recorded: callers skip building events nobody records.
func (a *App) Wants(kind string, blocked bool) bool {
	return a != nil && !a.skip[kind] && !(blocked && a.SkipBlocked)
}

// Emit records e (setting its SchemaVersion, ID and, when zero, Time):
// it writes e, as one JSON line, to the spool of every sink, and adds it
// to the admin UI's audit view. Once Emit returned, the event survives a
// crash of the process (it is in the spool files; the OS has it) and is
// delivered at least once; the spools are synced to disk every second
// (syncInterval), the bound of what a machine crash can lose. Emit
// never waits on a sink, only on a local file write. When a spool is
// full its sink's policy applies; ErrRefused is returned when a
// fail_closed sink could not take the event (or one's spool is still
// full): the caller must not serve the request unaudited. Emit on a nil
// *App does nothing.
func (a *App) Emit(e Event) error {
	if a == nil || !a.Wants(e.Kind, e.Action == "block" || e.Action == "reject") {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	e.ID = newID(e.Time)
	e.SchemaVersion = SchemaVersion
	if a.refusing.Load() {
		a.refused.Add(1)
		return ErrRefused
	}
	line, err := jsonLine(e)
	if err != nil {
		a.log.Error("audit event not encodable", zap.String("id", e.ID), zap.String("kind", e.Kind), zap.Error(err))
		return nil
	}
	refused := false
	for _, sc := range a.Sinks {
		if sc.enqueue(line) {
			refused = true
		}
	}
	a.tee(&e)
	if refused {
		a.refusing.Store(true)
		// A delivery may have made room (and cleared the flag) since
		// the spool refused: look again, or the flag could stay set.
		a.recomputeRefusing()
		return ErrRefused
	}
	return nil
}

// syncSpools syncs the spools' written lines to disk every
// syncInterval, and once more at stop.
func (a *App) syncSpools() {
	defer a.wg.Done()
	t := time.NewTicker(syncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-a.stop:
			a.syncAll()
			return
		}
		a.syncAll()
	}
}

func (a *App) syncAll() {
	for _, sc := range a.Sinks {
		if err := sc.spool.sync(); err != nil {
			sc.log.Error("audit spool sync failed", zap.Error(err))
		}
	}
}

// jsonLine is e as one JSON line, newline included.
func jsonLine(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	return append(b, '\n'), err
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
