package registry

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// AppName is the id of the Caddy app that owns the process's registry:
// the `sentinel` app (modules/sentinelapp).
const AppName = "sentinel"

// Owner is what the `sentinel` app implements: it holds the registry of
// the process.
type Owner interface {
	Registry() *Registry
}

// ctxKey is the context key of a registry given with WithRegistry.
type ctxKey struct{}

// From returns the registry of the process, which modules reach through
// their config's `sentinel` app, as Caddy's modules reach the tls app's
// certificate cache: a module calls it in Provision and keeps the result.
// In a config without a `sentinel` app, Caddy creates an empty one, which
// leaves the registry as it is.
func From(ctx caddy.Context) (*Registry, error) {
	if ctx.Context != nil {
		if r, ok := ctx.Value(ctxKey{}).(*Registry); ok {
			return r, nil
		}
	}
	app, err := ctx.App(AppName)
	if err != nil {
		return nil, fmt.Errorf("loading the %s app, which holds the registry: %w", AppName, err)
	}
	o, ok := app.(Owner)
	if !ok {
		return nil, fmt.Errorf("the %s app (%T) holds no registry", AppName, app)
	}
	return o.Registry(), nil
}

// WithRegistry returns a copy of ctx in which From returns r without
// loading the `sentinel` app: for modules provisioned outside a Caddy
// config (unit tests, tools) with a registry of their own.
func WithRegistry(ctx caddy.Context, r *Registry) caddy.Context {
	parent := ctx.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx.Context = context.WithValue(parent, ctxKey{}, r)
	return ctx
}
