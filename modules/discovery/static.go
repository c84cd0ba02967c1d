package discovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Static{})
}

// Static is the discovery `static`: a fixed list of backends, published
// once. It is what the original's `discovery "static" { backends … }`
// means; declared targets do the same.
type Static struct {
	// Targets are the backends (host:port, weight 1 when absent).
	Targets []registry.TargetSpec `json:"targets,omitempty"`

	loop *loop
}

// CaddyModule returns the Caddy module information.
func (Static) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.static", New: func() caddy.Module { return new(Static) }}
}

// Provision sets up the metrics.
func (s *Static) Provision(ctx caddy.Context) error {
	l, err := newLoop(ctx, "static")
	s.loop = l
	return err
}

// Validate checks the targets.
func (s *Static) Validate() error {
	if len(s.Targets) == 0 {
		return errors.New("static: no targets")
	}
	if err := checkTargets(s.Targets); err != nil {
		return fmt.Errorf("static: %w", err)
	}
	return nil
}

// Discover publishes the targets once.
func (s *Static) Discover(ctx context.Context, upstream string, publish func([]registry.TargetSpec)) {
	s.loop.bind(upstream)
	s.loop.report(append([]registry.TargetSpec(nil), s.Targets...), nil, publish)
	<-ctx.Done()
}

// Interface guards
var (
	_ caddy.Provisioner   = (*Static)(nil)
	_ caddy.Validator     = (*Static)(nil)
	_ registry.Discoverer = (*Static)(nil)
)
