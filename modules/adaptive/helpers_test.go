package adaptive

import (
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"sort"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/registry"
)

// clock is an injected clock.
type clock struct{ t int64 }

func (c *clock) now() int64                     { return c.t }
func (c *clock) add(d time.Duration)            { c.t += int64(d) }
func newClock() *clock                          { return &clock{t: int64(time.Hour)} }
func seeded(seed uint64) *rand.Rand             { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
func ms(n float64) int64                        { return int64(n * float64(time.Millisecond)) }
func okSample(rtt int64) sample                 { return sample{rtt: rtt, status: 200} }
func statusSample(rtt int64, status int) sample { return sample{rtt: rtt, status: status} }

// common returns the shared part of a policy (for the tests to inject
// the clock and the random source).
func (b *base) common() *base { return b }

// policy is what the tests need of a selection policy.
type policy interface {
	caddy.Provisioner
	reverseproxy.Selector
}

// provision provisions and validates a policy and gives it the clock and
// a seeded random source.
func provision[P policy](t testing.TB, p P, clk *clock) P {
	t.Helper()
	b := any(p).(interface{ common() *base }).common()
	if clk != nil {
		b.now = clk.now
	}
	b.rnd = seeded(1)
	ctx, cancel := caddy.NewContext(testCtx)
	t.Cleanup(cancel)
	if err := p.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := any(p).(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// testPool builds upstreams with hosts, as the proxy hands them over.
func testPool(addrs ...string) reverseproxy.UpstreamPool {
	p := make(reverseproxy.UpstreamPool, len(addrs))
	for i, a := range addrs {
		p[i] = &reverseproxy.Upstream{Host: new(reverseproxy.Host), Dial: a}
	}
	return p
}

// setAvailable marks an upstream healthy or not, as active health checks
// do.
func setAvailable(u *reverseproxy.Upstream, ok bool) {
	f := reflect.ValueOf(u).Elem().FieldByName("unhealthy")
	v := (*atomic.Int32)(unsafe.Pointer(f.UnsafeAddr()))
	if ok {
		v.Store(0)
	} else {
		v.Store(1)
	}
}

// count selects n times and counts the chosen addresses.
func count(s reverseproxy.Selector, pool reverseproxy.UpstreamPool, n int) map[string]int {
	c := map[string]int{}
	req := httptest.NewRequest("GET", "/", nil)
	for range n {
		if u := s.Select(pool, req, nil); u != nil {
			c[u.Dial]++
		} else {
			c[""]++
		}
	}
	return c
}

// feed records an outcome for an address, as the transport does.
func feed(addr string, now int64, s sample) { testFeedback.target(addr).record(now, s) }

// inflight sets the requests in flight of an address.
func inflight(t testing.TB, addr string, n int64) {
	t.Helper()
	st := testFeedback.target(addr).stats
	for st.InFlight() < n {
		st.Start()
	}
	for st.InFlight() > n {
		st.Done(false)
	}
}

// reconcile declares a registry upstream with the given target weights.
func reconcile(t testing.TB, id string, weights map[string]int) {
	t.Helper()
	addrs := make([]string, 0, len(weights))
	for a := range weights {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	spec := registry.UpstreamSpec{ID: id}
	for _, a := range addrs {
		spec.Targets = append(spec.Targets, registry.TargetSpec{Address: a, Weight: weights[a]})
	}
	testReg.Reconcile([]registry.UpstreamSpec{spec}, nil)
}

// adjust ends an interval of one target alone, with the absolute latency
// threshold (maybeAdjust does it for a pool).
func (t *adaptiveTarget) adjust() {
	if t.average() {
		t.reweigh(t.g.p.latThreshold)
	}
}
