package adaptive

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

func init() {
	caddy.RegisterModule(Weighted{})
}

// Weighted is smooth weighted round robin (the nginx algorithm) over the
// available targets, with each target's weight read live from the
// registry: a weight changed through the control-plane API applies to the
// next request. Weights 5:1:1 give a a b a c a a, not a a a a a b c.
type Weighted struct {
	// Upstream is the registry upstream whose weights apply.
	Upstream string `json:"upstream"`

	reg *registry.Registry
	// mu guards current, the smooth-round-robin state by address.
	mu      *sync.Mutex
	current map[string]int
}

// CaddyModule returns the Caddy module information.
func (Weighted) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.sentinel_weighted",
		New: func() caddy.Module { return new(Weighted) },
	}
}

// Provision binds the policy to the registry.
func (s *Weighted) Provision(caddy.Context) error {
	s.reg = registry.Default
	s.mu = new(sync.Mutex)
	s.current = make(map[string]int)
	return nil
}

// Validate checks the upstream id.
func (s *Weighted) Validate() error {
	if s.Upstream == "" {
		return fmt.Errorf("sentinel_weighted: upstream id is required")
	}
	return nil
}

// Select picks the available target with the highest current weight.
func (s *Weighted) Select(pool reverseproxy.UpstreamPool, _ *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	weights := s.reg.Pool(s.Upstream)
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *reverseproxy.Upstream
	bestCur, total := 0, 0
	for _, u := range pool {
		if !u.Available() {
			continue
		}
		w := weights.Weight(u.Dial)
		if w <= 0 {
			continue
		}
		cur := s.current[u.Dial] + w
		s.current[u.Dial] = cur
		total += w
		if best == nil || cur > bestCur {
			best, bestCur = u, cur
		}
	}
	if best != nil {
		s.current[best.Dial] -= total
	}
	if len(s.current) > 2*len(pool)+8 {
		// Targets come and go through the API: forget the gone ones.
		for addr := range s.current {
			if !inPool(pool, addr) {
				delete(s.current, addr)
			}
		}
	}
	return best
}

func inPool(pool reverseproxy.UpstreamPool, addr string) bool {
	for _, u := range pool {
		if u.Dial == addr {
			return true
		}
	}
	return false
}

// UnmarshalCaddyfile reads `lb_policy sentinel_weighted <upstream>`.
func (s *Weighted) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Upstream = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Weighted)(nil)
	_ caddy.Validator       = (*Weighted)(nil)
	_ reverseproxy.Selector = (*Weighted)(nil)
	_ caddyfile.Unmarshaler = (*Weighted)(nil)
)
