package audit

import (
	"context"
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

// Sink delivers batches of audit events to a destination. Sinks are
// guest modules in the `sentinel.audit.sinks` namespace.
type Sink interface {
	// Deliver stores batch (each line one JSON event, without the
	// newline) at the destination. It returns nil when every event was
	// stored (or permanently rejected, see RejectedError); any other
	// error retries the whole batch later, so a destination may receive
	// an event twice, always with the same id.
	Deliver(ctx context.Context, batch [][]byte) error
}

// RejectedError is returned by Deliver when the destination stored the
// batch except N events it will never accept (e.g. Elasticsearch mapping
// errors): those are counted as `rejected`, logged, and not retried.
type RejectedError struct {
	N      int
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%d audit events rejected by the destination: %s", e.N, e.Reason)
}

// The spool policies.
const (
	policyDropNewest = "drop_newest"
	policyDropOldest = "drop_oldest"
	policyFailClosed = "fail_closed"
)

// Defaults of SinkConfig.
const (
	defaultMaxSpoolBytes = 256 << 20
	defaultBatchSize     = 500
	defaultBatchBytes    = 4 << 20
	defaultMinBackoff    = 200 * time.Millisecond
	defaultMaxBackoff    = 30 * time.Second
	defaultTimeout       = 30 * time.Second
)

// SinkConfig is one sink with its spool and delivery settings.
type SinkConfig struct {
	// Name names the sink in metrics, logs and its spool directory
	// (default: the sink's type, e.g. `kafka`).
	Name string `json:"name,omitempty"`
	// MaxSpoolBytes bounds the sink's spool on disk (default 256 MiB).
	MaxSpoolBytes int64 `json:"max_spool_bytes,omitempty"`
	// WhenFull is the policy when the spool is full: `drop_newest`
	// (default: the new event is dropped), `drop_oldest` (the oldest
	// undelivered segment is dropped) or `fail_closed` (the event is
	// dropped and, until the spool has room again, Emit refuses events
	// and audit-critical routes answer 503).
	WhenFull string `json:"when_full,omitempty"`
	// BatchSize is the most events per delivery (default 500).
	BatchSize int `json:"batch_size,omitempty"`
	// BatchBytes is about the most bytes per delivery (default 4 MiB).
	BatchBytes int64 `json:"batch_bytes,omitempty"`
	// FlushInterval waits up to this long for a full batch before
	// delivering a smaller one (object stores; default 0: at once).
	FlushInterval caddy.Duration `json:"flush_interval,omitempty"`
	// MinBackoff and MaxBackoff bound the wait between retries, which
	// doubles after each failure (defaults 200ms and 30s).
	MinBackoff caddy.Duration `json:"min_backoff,omitempty"`
	MaxBackoff caddy.Duration `json:"max_backoff,omitempty"`
	// Timeout bounds one delivery (default 30s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// SinkRaw is the sink module (`type`: file, kafka, s3, gcs,
	// elasticsearch, datadog, log).
	SinkRaw json.RawMessage `json:"sink" caddy:"namespace=sentinel.audit.sinks inline_key=type"`

	sink    Sink
	spool   *spool
	poolKey string
	policy  string
	app     *App
	log     *zap.Logger
	full    atomic.Bool
	c       counters
}

// counters are a sink's event counts by result.
type counters struct {
	delivered, failed, rejected, droppedNewest, droppedOldest, refused atomic.Int64
}

// spools are the open spools of the process, by directory: during a
// reload the new config's sinks use the spools the old config's still
// hold.
var spools = caddy.NewUsagePool()

type pooledSpool struct{ *spool }

func (p pooledSpool) Destruct() error { return p.close() }

func (sc *SinkConfig) provision(ctx caddy.Context, a *App, i int) error {
	if sc.SinkRaw == nil {
		return fmt.Errorf("audit sinks[%d]: no sink", i)
	}
	var typ struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(sc.SinkRaw, &typ)
	if sc.Name == "" {
		sc.Name = typ.Type
	}
	if sc.Name == "" || sc.Name == "*" || filepath.Base(sc.Name) != sc.Name || sc.Name == "." || sc.Name == ".." {
		return fmt.Errorf("audit sinks[%d]: name %q is not a valid directory name", i, sc.Name)
	}
	switch sc.WhenFull {
	case "", policyDropNewest:
		sc.policy = policyDropNewest
	case policyDropOldest, policyFailClosed:
		sc.policy = sc.WhenFull
	default:
		return fmt.Errorf("audit sink %q: when_full %q: must be drop_newest, drop_oldest or fail_closed", sc.Name, sc.WhenFull)
	}
	if sc.MaxSpoolBytes <= 0 {
		sc.MaxSpoolBytes = defaultMaxSpoolBytes
	}
	if sc.BatchSize <= 0 {
		sc.BatchSize = defaultBatchSize
	}
	if sc.BatchBytes <= 0 {
		sc.BatchBytes = defaultBatchBytes
	}
	if sc.MinBackoff <= 0 {
		sc.MinBackoff = caddy.Duration(defaultMinBackoff)
	}
	if sc.MaxBackoff < sc.MinBackoff {
		sc.MaxBackoff = max(caddy.Duration(defaultMaxBackoff), sc.MinBackoff)
	}
	if sc.Timeout <= 0 {
		sc.Timeout = caddy.Duration(defaultTimeout)
	}
	sc.app = a
	sc.log = a.log.With(zap.String("sink", sc.Name))
	mod, err := ctx.LoadModule(sc, "SinkRaw")
	if err != nil {
		return fmt.Errorf("audit sink %q: %w", sc.Name, err)
	}
	sc.sink = mod.(Sink)
	dir := filepath.Join(a.SpoolDir, sc.Name)
	v, _, err := spools.LoadOrNew(dir, func() (caddy.Destructor, error) {
		s, err := openSpool(dir, sc.MaxSpoolBytes, 0)
		if err != nil {
			return nil, err
		}
		return pooledSpool{s}, nil
	})
	if err != nil {
		return fmt.Errorf("audit sink %q: %w", sc.Name, err)
	}
	sc.poolKey = dir
	sc.spool = v.(pooledSpool).spool
	sc.spool.setMax(sc.MaxSpoolBytes)
	return nil
}

func (sc *SinkConfig) cleanup() error {
	if sc.poolKey == "" {
		return nil
	}
	_, err := spools.Delete(sc.poolKey)
	sc.poolKey = ""
	return err
}

// enqueue appends line to the spool, applying the policy when it is
// full. It reports whether the sink refuses events (fail_closed, full).
func (sc *SinkConfig) enqueue(line []byte) bool {
	err := sc.spool.append(line)
	if errors.Is(err, errSpoolFull) {
		switch sc.policy {
		case policyDropOldest:
			n, derr := sc.spool.dropOldest(int64(len(line)))
			sc.c.droppedOldest.Add(int64(n))
			if derr == nil {
				err = sc.spool.append(line)
			}
			if err != nil {
				sc.c.droppedNewest.Add(1)
			}
		case policyFailClosed:
			sc.c.refused.Add(1)
			sc.full.Store(true)
		default:
			sc.c.droppedNewest.Add(1)
		}
		if err != nil && sc.policy != policyFailClosed {
			sc.log.Debug("audit spool full", zap.String("policy", sc.policy))
		}
		return sc.full.Load()
	}
	if err != nil {
		sc.c.droppedNewest.Add(1)
		sc.log.Error("audit spool write failed", zap.Error(err))
	}
	return sc.full.Load()
}

// deliver sends the spool's events until stop, retrying with backoff.
func (sc *SinkConfig) deliver(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	backoff := time.Duration(sc.MinBackoff)
	for ctx.Err() == nil {
		sc.spool.readMu.Lock()
		lines, next, err := sc.spool.read(sc.BatchSize, sc.BatchBytes)
		if err == nil && len(lines) > 0 && len(lines) < sc.BatchSize && sc.FlushInterval > 0 {
			sc.spool.readMu.Unlock()
			if !sleep(ctx, time.Duration(sc.FlushInterval)) {
				return
			}
			sc.spool.readMu.Lock()
			lines, next, err = sc.spool.read(sc.BatchSize, sc.BatchBytes)
		}
		if err != nil {
			sc.spool.readMu.Unlock()
			sc.log.Error("audit spool read failed", zap.Error(err))
			if !sleep(ctx, backoff) {
				return
			}
			continue
		}
		if len(lines) == 0 {
			sc.spool.readMu.Unlock()
			select {
			case <-sc.spool.notify:
			case <-time.After(time.Second): // another process's reader may have left work
			case <-ctx.Done():
				return
			}
			continue
		}
		dctx, dcancel := context.WithTimeout(ctx, time.Duration(sc.Timeout))
		err = sc.sink.Deliver(dctx, lines)
		dcancel()
		var rej *RejectedError
		if errors.As(err, &rej) {
			sc.c.rejected.Add(int64(rej.N))
			sc.log.Error("audit events rejected by the destination", zap.Int("events", rej.N), zap.String("reason", rej.Reason))
			err = nil
		}
		if err != nil {
			sc.spool.readMu.Unlock()
			sc.c.failed.Add(int64(len(lines)))
			sc.log.Warn("audit delivery failed; retrying", zap.Int("events", len(lines)), zap.Duration("backoff", backoff), zap.Error(err))
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, time.Duration(sc.MaxBackoff))
			continue
		}
		backoff = time.Duration(sc.MinBackoff)
		if err := sc.spool.ack(next); err != nil {
			sc.log.Error("audit spool cursor not saved", zap.Error(err))
		}
		sc.spool.readMu.Unlock()
		sc.c.delivered.Add(int64(len(lines)) - sc.c.rejectedIn(rej))
		if sc.full.Load() && sc.spool.bytes() <= sc.MaxSpoolBytes*3/4 {
			sc.full.Store(false)
			sc.app.recomputeRefusing()
		}
	}
}

func (c *counters) rejectedIn(rej *RejectedError) int64 {
	if rej == nil {
		return 0
	}
	return int64(rej.N)
}

// recomputeRefusing clears the refusing flag when no fail_closed sink is
// full any more.
func (a *App) recomputeRefusing() {
	for _, sc := range a.Sinks {
		if sc.full.Load() {
			return
		}
	}
	a.refusing.Store(false)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
