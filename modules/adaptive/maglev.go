package adaptive

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/cespare/xxhash/v2"
)

func init() {
	caddy.RegisterModule(new(Maglev))
}

// Maglev is Google's Maglev hashing (Eisenbud et al., NSDI 2016): a lookup
// table of `table_size` entries (a prime, default 65537) is filled from
// each target's permutation — offset = xxh64(address) mod M, skip =
// (xxh64_seed1(address) mod (M-1)) + 1 — in turns, so that every target
// owns about M/N entries and a change of the target set moves few keys.
// A request's key (client IP by default, or a header, a cookie, the path)
// picks the entry xxh64(key) mod M; when its owner is not available the
// following entries are tried. Requests without a key go to a random
// target (the original sent them all to the owner of "default").
type Maglev struct {
	// Upstream labels the metrics (optional).
	Upstream string `json:"upstream,omitempty"`

	// Key is what is hashed: client_ip (default), header, cookie or path.
	Key string `json:"key,omitempty"`

	// KeyName is the header or cookie name, for those keys.
	KeyName string `json:"key_name,omitempty"`

	// TableSize is the lookup table size M, a prime larger than the
	// number of targets (default 65537).
	TableSize int `json:"table_size,omitempty"`

	base
	key   requestKey
	views views[*atomic.Uint64]
}

// CaddyModule returns the Caddy module information.
func (*Maglev) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.maglev",
		New: func() caddy.Module { return new(Maglev) },
	}
}

// Provision applies the defaults and registers the metrics.
func (s *Maglev) Provision(ctx caddy.Context) error {
	if err := s.setup(ctx, "maglev", s.Upstream, nil); err != nil {
		return err
	}
	if s.TableSize == 0 {
		s.TableSize = 65537
	}
	var err error
	if s.key, err = newRequestKey(s.Key, s.KeyName); err != nil {
		return fmt.Errorf("maglev: %w", err)
	}
	s.views.item = func(tg *Target, _ float64) *atomic.Uint64 { return s.selections(tg.addr) }
	s.views.finish = func(v, _ *view[*atomic.Uint64]) {
		if len(v.addrs) < s.TableSize {
			v.ext = maglevTable(v.addrs, s.TableSize)
		}
	}
	return registerMetrics(ctx, s)
}

// Validate checks the table size.
func (s *Maglev) Validate() error {
	if s.TableSize < 2 || s.TableSize > 1<<24 || !isPrime(s.TableSize) {
		return fmt.Errorf("maglev: table_size %d must be a prime up to 16777216", s.TableSize)
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *Maglev) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// maglevTable fills the lookup table (the paper's Populate).
func maglevTable(addrs []string, m int) []int32 {
	n := len(addrs)
	table := make([]int32, m)
	if n == 0 {
		return table
	}
	for i := range table {
		table[i] = -1
	}
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, a := range addrs {
		offset[i] = xxhash.Sum64String(a) % uint64(m)
		d := xxhash.NewWithSeed(1)
		_, _ = d.WriteString(a)
		skip[i] = d.Sum64()%uint64(m-1) + 1
	}
	filled := 0
	for {
		for i := range n {
			c := (offset[i] + next[i]*skip[i]) % uint64(m)
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % uint64(m)
			}
			table[c] = int32(i)
			next[i]++
			filled++
			if filled == m {
				return table
			}
		}
	}
}

// Select returns the owner of the key's entry, or of the next entries
// when it is not available (or, on a retry, when the request was already
// sent to it and another target is available).
func (s *Maglev) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	v := s.views.get(s.fb, pool, s.regPool())
	table, _ := v.ext.([]int32)
	key, ok := s.key.of(r)
	i := selectUntried(r, func(ex *attempts) int {
		if ok && len(table) > 0 {
			m := len(table)
			e := int(xxhash.Sum64String(key) % uint64(m))
			for k := 0; k < m; k++ {
				if o := int(table[(e+k)%m]); ex.avail(pool[o]) {
					return o
				}
				if k == 4*len(pool) {
					break // many targets are out: draw at random
				}
			}
		}
		var buf [maxChoices]int
		if c := v.draw(pool, s.rnd, 1, false, ex, &buf); len(c) > 0 {
			return c[0]
		}
		return pickEmpty
	})
	if i < 0 {
		return nil
	}
	v.items[i].Add(1)
	return pool[i]
}

// lbMetrics reports the selections of each target.
func (s *Maglev) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	s.views.emitSelections(&s.base, emit)
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy maglev [<upstream>] {
//	    upstream   <id>
//	    key        client_ip|header|cookie|path
//	    key_name   <header or cookie name>
//	    table_size <prime>
//	}
func (s *Maglev) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"key":        stringArg(&s.Key),
		"key_name":   stringArg(&s.KeyName),
		"table_size": intArg(&s.TableSize),
	})
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Maglev)(nil)
	_ caddy.Validator       = (*Maglev)(nil)
	_ caddy.CleanerUpper    = (*Maglev)(nil)
	_ reverseproxy.Selector = (*Maglev)(nil)
	_ caddyfile.Unmarshaler = (*Maglev)(nil)
)
