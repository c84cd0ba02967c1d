package adaptive

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/cespare/xxhash/v2"
)

func init() {
	caddy.RegisterModule(new(DeterministicSubset))
}

// innerAliases are the inner policies earlier configs named by a bare
// string, and the selection policies they stand for.
var innerAliases = map[string]string{"round_robin": "round_robin", "random": "random", "least_connections": "least_conn"}

// DeterministicSubset makes each proxy talk to a small, stable subset of
// a large pool (fewer connections on both sides): targets are ranked by
// xxh64("{address}:{proxy_id}") and the `subset_size` lowest-ranked
// available ones form the subset; the inner policy picks among them. The
// same proxy id always gives the same subset; different proxies spread
// over the pool. A target that becomes unavailable is replaced by the
// next in rank.
type DeterministicSubset struct {
	// Upstream labels the metrics (optional).
	Upstream string `json:"upstream,omitempty"`

	// SubsetSize is the number of targets used (default 10).
	SubsetSize int `json:"subset_size,omitempty"`

	// ProxyID identifies this proxy (default: $SENTINEL_PROXY_ID, else the
	// host name, else a random id per process as in the original).
	ProxyID string `json:"proxy_id,omitempty"`

	// InnerRaw is the selection policy within the subset (a module of
	// http.reverse_proxy.selection_policies, default round_robin); it
	// chooses among the subset's available targets. The bare strings
	// "round_robin", "random" and "least_connections" of earlier configs
	// are accepted.
	InnerRaw json.RawMessage `json:"inner,omitempty" caddy:"namespace=http.reverse_proxy.selection_policies inline_key=policy"`

	base
	inner reverseproxy.Selector
	subs  subPools
	views views[*atomic.Uint64]
}

// CaddyModule returns the Caddy module information.
func (*DeterministicSubset) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.deterministic_subset",
		New: func() caddy.Module { return new(DeterministicSubset) },
	}
}

// Provision applies the defaults and registers the metrics.
func (s *DeterministicSubset) Provision(ctx caddy.Context) error {
	if err := s.setup(ctx, "deterministic_subset", s.Upstream, nil); err != nil {
		return err
	}
	if s.SubsetSize == 0 {
		s.SubsetSize = 10
	}
	raw, _, err := guestPolicy(s.InnerRaw, "deterministic_subset: inner", "round_robin", innerAliases)
	if err != nil {
		return err
	}
	s.InnerRaw = raw
	mod, err := ctx.LoadModule(s, "InnerRaw")
	if err != nil {
		return fmt.Errorf("deterministic_subset: loading the inner selection policy: %w", err)
	}
	s.inner = mod.(reverseproxy.Selector)
	if s.ProxyID == "" {
		s.ProxyID = defaultProxyID(os.Getenv, os.Hostname)
	}
	s.views.item = func(tg *Target, _ float64) *atomic.Uint64 { return s.selections(tg.addr) }
	s.views.finish = func(v, _ *view[*atomic.Uint64]) { v.ext = s.rank(v.addrs) }
	return registerMetrics(ctx, s)
}

// Validate checks the parameters.
func (s *DeterministicSubset) Validate() error {
	if s.SubsetSize < 1 || s.SubsetSize > 1024 {
		return fmt.Errorf("deterministic_subset: subset_size must be between 1 and 1024")
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *DeterministicSubset) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

func defaultProxyID(getenv func(string) string, hostname func() (string, error)) string {
	if id := getenv("SENTINEL_PROXY_ID"); id != "" {
		return id
	}
	if h, err := hostname(); err == nil && h != "" {
		return h
	}
	return "proxy-" + strconv.FormatUint(uint64(rand.Uint32()), 10) //nolint:gosec // an identifier
}

// rank orders the targets by their subset score.
func (s *DeterministicSubset) rank(addrs []string) []int {
	scores := make([]uint64, len(addrs))
	order := make([]int, len(addrs))
	for i, a := range addrs {
		scores[i] = xxhash.Sum64String(a + ":" + s.ProxyID)
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
	return order
}

// maxStackSubset is the subset size up to which a selection allocates
// nothing.
const maxStackSubset = 64

// Select lets the inner policy pick within the subset.
//
// A retry leaves out the targets the request was already sent to (the
// next target in the order takes their place, as for an unhealthy one),
// when another is available.
func (s *DeterministicSubset) Select(pool reverseproxy.UpstreamPool, r *http.Request, w http.ResponseWriter) *reverseproxy.Upstream {
	v := s.views.get(s.fb, pool, s.regPool())
	order, _ := v.ext.([]int)
	var buf [maxStackSubset]int
	subset := buf[:0]
	if s.SubsetSize > maxStackSubset {
		subset = make([]int, 0, s.SubsetSize)
	}
	selectUntried(r, func(ex *attempts) int {
		subset = subset[:0]
		for _, i := range order {
			if ex.avail(pool[i]) {
				subset = append(subset, i)
				if len(subset) == s.SubsetSize {
					break
				}
			}
		}
		if len(subset) == 0 {
			return pickEmpty
		}
		return 0
	})
	if len(subset) == 0 {
		return nil
	}
	sub := s.subs.get(len(subset))
	defer s.subs.put(sub)
	for _, i := range subset {
		*sub = append(*sub, pool[i])
	}
	u := s.inner.Select(*sub, r, w)
	for _, i := range subset {
		if pool[i] == u {
			v.items[i].Add(1)
			break
		}
	}
	return u
}

// lbMetrics reports the selections of each target.
func (s *DeterministicSubset) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	s.views.emitSelections(&s.base, emit)
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy deterministic_subset [<upstream>] {
//	    upstream    <id>
//	    subset_size <n>
//	    proxy_id    <id>
//	    inner       <policy> [<args…>] [{ <policy's settings> }]
//	}
//
// The inner policy is any selection policy (least_connections stands for
// least_conn).
func (s *DeterministicSubset) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"subset_size": intArg(&s.SubsetSize),
		"proxy_id":    stringArg(&s.ProxyID),
		"inner": func(d *caddyfile.Dispenser) (err error) {
			s.InnerRaw, err = policyFromCaddyfile(d, map[string]string{"least_connections": "least_conn"})
			return err
		},
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*DeterministicSubset)(nil)
	_ caddy.Validator       = (*DeterministicSubset)(nil)
	_ caddy.CleanerUpper    = (*DeterministicSubset)(nil)
	_ reverseproxy.Selector = (*DeterministicSubset)(nil)
	_ caddyfile.Unmarshaler = (*DeterministicSubset)(nil)
)
