// Package audit is Sentinel's audit trail: the `sentinel_audit` app
// receives security events (agent decisions, WAF events, WASM blocks,
// rate-limit rejections, control-plane changes, config loads) through
// Emit, which never blocks, and ships them to sinks (file, Kafka, S3,
// GCS, Elasticsearch, Datadog) through a bounded on-disk spool per sink,
// at least once, with retries. docs/audit.md documents the event schema.
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

// defaultBufferSize is the default bound of the in-memory queue.
const defaultBufferSize = 4096

// App is the `sentinel_audit` app: the audit event bus and its sinks.
type App struct {
	// SpoolDir is the directory of the sinks' spools (one directory per
	// sink, named after it). Default: Caddy's data directory + `/audit`.
	SpoolDir string `json:"spool_dir,omitempty"`
	// BufferSize bounds the in-memory queue between Emit and the spools
	// (events; default 4096). When it is full, events are dropped
	// (counted as sink `*`, result `dropped_buffer`), or refused when a
	// sink is fail_closed.
	BufferSize int `json:"buffer_size,omitempty"`
	// SkipKinds are event kinds not recorded (e.g. `waf`).
	SkipKinds []string `json:"skip_kinds,omitempty"`
	// SkipBlocked drops the events of requests refused (actions `block`
	// and `reject`); KDL `log-blocked #false`.
	SkipBlocked bool `json:"skip_blocked,omitempty"`
	// Sinks are where the events go; each has its own spool and
	// delivery.
	Sinks []*SinkConfig `json:"sinks,omitempty"`

	ch         chan Event
	skip       map[string]bool
	failClosed bool
	refusing   atomic.Bool
	dropped    atomic.Int64 // buffer stage
	refused    atomic.Int64 // buffer stage
	stop       chan struct{}
	wg         sync.WaitGroup
	started    bool
	log        *zap.Logger
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
	if a.BufferSize <= 0 {
		a.BufferSize = defaultBufferSize
	}
	if a.SpoolDir == "" {
		a.SpoolDir = filepath.Join(caddy.AppDataDir(), "audit")
	}
	a.skip = make(map[string]bool, len(a.SkipKinds))
	for _, k := range a.SkipKinds {
		a.skip[k] = true
	}
	a.ch = make(chan Event, a.BufferSize)
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
		if sc.policy == policyFailClosed {
			a.failClosed = true
		}
	}
	return registerMetrics(ctx, a)
}

// Start starts the dispatcher and the sinks' deliveries.
func (a *App) Start() error {
	a.started = true
	a.wg.Add(1)
	go a.dispatch()
	for _, sc := range a.Sinks {
		a.wg.Add(1)
		go sc.deliver(a.stop, &a.wg)
	}
	return nil
}

// Stop writes the queued events to the spools and stops the
// deliveries. Undelivered events stay in the spools for the next start.
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

// Emit records e (setting its SchemaVersion, ID and, when zero, Time).
// It never blocks: when the queue is full the event is dropped, and
// ErrRefused is returned if a sink is fail_closed (or one's spool is
// full). Emit on a nil *App does nothing.
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
	select {
	case a.ch <- e:
		return nil
	default:
		if a.failClosed {
			a.refused.Add(1)
			return ErrRefused
		}
		a.dropped.Add(1)
		return nil
	}
}

// dispatch writes the queued events to every sink's spool; at stop, it
// writes what is queued and returns.
func (a *App) dispatch() {
	defer a.wg.Done()
	for {
		select {
		case e := <-a.ch:
			a.record(e)
		case <-a.stop:
			for {
				select {
				case e := <-a.ch:
					a.record(e)
				default:
					return
				}
			}
		}
	}
}

// record appends e to each sink's spool, applying the sink's policy
// when the spool is full.
func (a *App) record(e Event) {
	line, err := jsonLine(e)
	if err != nil {
		a.log.Error("audit event not encodable", zap.String("id", e.ID), zap.String("kind", e.Kind), zap.Error(err))
		return
	}
	refusing := false
	for _, sc := range a.Sinks {
		if sc.enqueue(line) {
			refusing = true
		}
	}
	a.refusing.Store(refusing)
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
