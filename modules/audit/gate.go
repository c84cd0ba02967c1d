package audit

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(Gate))
}

// errUnaudited is the cause of the gate's 503.
var errUnaudited = errors.New("audit trail refusing events (a fail_closed sink's spool is full): audit-critical route not served")

// Gate is the handler of audit-critical routes
// (`http.handlers.sentinel_audit_gate`): while a fail_closed sink's spool
// is full, it answers 503 (with Retry-After) instead of serving requests
// whose decisions could not be audited. Without a `sentinel_audit` app
// it passes every request.
type Gate struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (*Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.sentinel_audit_gate", New: func() caddy.Module { return new(Gate) }}
}

// Provision finds the audit app.
func (g *Gate) Provision(ctx caddy.Context) error {
	app, err := Lookup(ctx)
	g.app = app
	return err
}

// ServeHTTP answers 503 while the audit trail refuses events.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.app.Refusing() {
		w.Header().Set("Retry-After", "5")
		return caddyhttp.Error(http.StatusServiceUnavailable, errUnaudited)
	}
	return next.ServeHTTP(w, r)
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
	_ caddy.Provisioner           = (*Gate)(nil)
)
