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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
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
	// observe is the upstream's duration histogram (the per-upstream
	// sentinel_upstream_request_duration_seconds of the config's metrics
	// registry), which the sentinel transport observes per attempt.
	observe prometheus.Observer
	// metricsKey is the registry whose shared metrics this source holds
	// a reference to (nil: none).
	metricsKey prometheus.Registerer
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
	if mreg := ctx.GetMetricsRegistry(); mreg != nil {
		m, err := upstreamMetrics(mreg)
		if err != nil {
			return fmt.Errorf("sentinel upstream source: %w", err)
		}
		s.metricsKey = mreg
		s.observe = m.For(s.Upstream)
	}
	return nil
}

// Cleanup drops the source's reference to its config's upstream metrics.
func (s *Source) Cleanup() error {
	if s.metricsKey != nil {
		_, _ = configMetrics.Delete(s.metricsKey)
		s.metricsKey = nil
	}
	return nil
}

// Validate checks the upstream id.
func (s *Source) Validate() error {
	if s.Upstream == "" {
		return fmt.Errorf("sentinel upstream source: upstream id is required")
	}
	return nil
}

// GetUpstreams returns fresh Upstream values for the eligible targets,
// with the record of the request's attempts that the sentinel transport
// keeps, in one allocation for up to 8 targets (adaptive.Upstreams).
func (s *Source) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	p := s.reg.Pool(s.Upstream)
	if p == nil || len(p.Addresses) == 0 {
		return nil, nil
	}
	return adaptive.UpstreamsObserved(r, p.Addresses, s.observe), nil
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
	_ caddy.CleanerUpper          = (*Source)(nil)
	_ reverseproxy.UpstreamSource = (*Source)(nil)
	_ caddyfile.Unmarshaler       = (*Source)(nil)
)
