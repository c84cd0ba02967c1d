// Package upstreamsource is the dynamic upstream source
// http.reverse_proxy.upstreams.sentinel: the targets of a Sentinel
// upstream, read from the registry on every request, so that targets
// added, drained or taken out by health checks apply at once, without a
// config reload.
package upstreamsource

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Source{})
}

// Source returns the active, healthy targets of one upstream of the
// registry. An unknown upstream, or one with no eligible target, gives an
// empty list: the proxy answers 503.
type Source struct {
	// Upstream is the id of the upstream in the registry.
	Upstream string `json:"upstream"`

	reg *registry.Registry
}

// CaddyModule returns the Caddy module information.
func (Source) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.sentinel",
		New: func() caddy.Module { return new(Source) },
	}
}

// Provision binds the source to the process registry, which the
// config's sentinel app holds.
func (s *Source) Provision(ctx caddy.Context) error {
	reg, err := registry.From(ctx)
	if err != nil {
		return fmt.Errorf("sentinel upstream source: %w", err)
	}
	s.reg = reg
	return nil
}

// Validate checks the upstream id.
func (s *Source) Validate() error {
	if s.Upstream == "" {
		return fmt.Errorf("sentinel upstream source: upstream id is required")
	}
	return nil
}

// GetUpstreams returns fresh Upstream values for the eligible targets:
// one allocation for up to 8 targets, two above.
//
// The values cannot be cached per registry snapshot and shared between
// requests: Caddy's reverse proxy provisions every dynamic upstream on
// every request (provisionUpstream writes its Host, circuit breaker,
// MaxRequests and passive health policy), so concurrent requests sharing
// one value would race; Caddy's own dynamic sources copy their cached
// values per request for the same reason.
func (s *Source) GetUpstreams(*http.Request) ([]*reverseproxy.Upstream, error) {
	p := s.reg.Pool(s.Upstream)
	if p == nil || len(p.Addresses) == 0 {
		return nil, nil
	}
	addrs := p.Addresses
	// The values and the pointers to them in one block, in the size
	// classes of small pools.
	switch n := len(addrs); {
	case n == 1:
		b := new(struct {
			u [1]reverseproxy.Upstream
			p [1]*reverseproxy.Upstream
		})
		return fill(addrs, b.u[:], b.p[:]), nil
	case n <= 2:
		b := new(struct {
			u [2]reverseproxy.Upstream
			p [2]*reverseproxy.Upstream
		})
		return fill(addrs, b.u[:n], b.p[:n]), nil
	case n <= 4:
		b := new(struct {
			u [4]reverseproxy.Upstream
			p [4]*reverseproxy.Upstream
		})
		return fill(addrs, b.u[:n], b.p[:n]), nil
	case n <= 8:
		b := new(struct {
			u [8]reverseproxy.Upstream
			p [8]*reverseproxy.Upstream
		})
		return fill(addrs, b.u[:n], b.p[:n]), nil
	}
	return fill(addrs, make([]reverseproxy.Upstream, len(addrs)), make([]*reverseproxy.Upstream, len(addrs))), nil
}

// fill sets the dial addresses of ups and points out at them; all three
// have the same length.
func fill(addrs []string, ups []reverseproxy.Upstream, out []*reverseproxy.Upstream) []*reverseproxy.Upstream {
	for i, a := range addrs {
		ups[i].Dial = a
		out[i] = &ups[i]
	}
	return out
}

// UnmarshalCaddyfile reads `dynamic sentinel <upstream>`.
func (s *Source) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Upstream = d.Val()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("sentinel upstream source takes only the upstream id")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Source)(nil)
	_ caddy.Validator             = (*Source)(nil)
	_ reverseproxy.UpstreamSource = (*Source)(nil)
	_ caddyfile.Unmarshaler       = (*Source)(nil)
)
