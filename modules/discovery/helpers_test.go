package discovery

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/registry"
)

// env is the real kube-apiserver of the package's tests (nil: absent).
var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

// noLeaks fails the test when it leaves goroutines behind: every
// discoverer's goroutines end with its context.
func noLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.trapSignalsCrossPlatform.func1")}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// provision provisions m with a fresh Caddy context (its own metrics
// registry), cancelled at the test's end.
func provision(t *testing.T, m caddy.Provisioner) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// sink records what a discoverer publishes.
type sink struct {
	mu   sync.Mutex
	sets [][]registry.TargetSpec
	ch   chan struct{}
}

// run runs d for upstream "u" until the test's end (which waits for
// Discover to return).
func run(t *testing.T, d registry.Discoverer) *sink {
	t.Helper()
	s := &sink{ch: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Discover(ctx, "u", func(ts []registry.TargetSpec) {
			s.mu.Lock()
			s.sets = append(s.sets, ts)
			s.mu.Unlock()
			select {
			case s.ch <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Discover did not return after its context ended")
		}
		if c, ok := d.(caddy.CleanerUpper); ok {
			_ = c.Cleanup()
		}
	})
	return s
}

// last is the last published set as "addr/weight,…" ("" before any).
func (s *sink) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sets) == 0 {
		return ""
	}
	return show(s.sets[len(s.sets)-1])
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sets)
}

func show(ts []registry.TargetSpec) string {
	var out []string
	for _, t := range ts {
		w := ""
		if t.Weight > 1 {
			w = "/" + strconv.Itoa(t.Weight)
		}
		out = append(out, t.Address+w)
	}
	return strings.Join(out, ",")
}

// await waits until the last published set is want.
func (s *sink) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := s.last(); got == want {
			return
		}
		select {
		case <-s.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("published %q, want %q", s.last(), want)
		}
	}
}

// metric returns the value of a discovery series of upstream "u"
// (result "" for the gauges).
func metric(t *testing.T, ctx caddy.Context, name, result string) float64 {
	t.Helper()
	mfs, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "upstream") == "u" && (result == "" || label(m, "result") == result) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
