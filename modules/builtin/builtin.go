// Package builtin provides the `sentinel_builtin` handler, which answers
// Sentinel's built-in endpoints (status, health, not found) with small
// JSON documents.
package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Builtin{})
	httpcaddyfile.RegisterHandlerDirective("sentinel_builtin", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_builtin", httpcaddyfile.Before, "respond")
}

// The kinds of built-in responses.
const (
	// KindStatus answers 200 with the service name, versions and uptime:
	// `{"status":"ok","service":"sentinel","version":"…","caddy_version":"…","uptime_seconds":N}`.
	KindStatus = "status"

	// KindHealth answers 200 with `{"status":"healthy"}`.
	KindHealth = "health"

	// KindNotFound answers 404 with `{"error":"not found","status":404}`.
	KindNotFound = "not_found"

	// KindUpstreams answers 200 with every upstream of the registry: its
	// targets with weight, state, health and requests in flight.
	KindUpstreams = "upstreams"

	// KindConfig answers 200 with the runtime configuration held in the
	// registries: upstreams with their effective targets, and routes with
	// their enable flags.
	KindConfig = "config"

	// KindReady answers 200 `{"status":"ready"}` once the config this
	// handler belongs to has started completely (all its servers listen),
	// and 503 `{"status":"starting"}` before: a readiness probe does not
	// see a pod ready while its last listeners are still starting.
	KindReady = "ready"

	// KindError answers a handler error (in a server's error routes) as
	// JSON: `{"error":…,"status":…}` with the error's status.
	KindError = "error"
)

// Builtin is a terminal handler that answers one of Sentinel's built-in
// endpoints. It never calls the next handler.
//
// Every response is a JSON document with `Content-Type: application/json`
// and `Cache-Control: no-store`. HEAD requests get the same status and
// headers (including Content-Length) without a body.
type Builtin struct {
	// Which built-in response to give. One of:
	//
	// - `status`: 200 `{"status":"ok","service":"sentinel","version":"<version>","caddy_version":"<version>","uptime_seconds":<N>}`,
	//   where the version is Sentinel's (the VERSION file, as `sentinel
	//   version` prints it), caddy_version the Caddy it is built on, and
	//   the uptime the number of whole seconds since the process started;
	// - `health`: 200 `{"status":"healthy"}`;
	// - `not_found`: 404 `{"error":"not found","status":404}`.
	//
	// Required.
	Kind string `json:"kind"`

	// The ID of the Sentinel route this handler serves; it is only used
	// to label log entries.
	Route string `json:"route,omitempty"`

	respond responder
	version string
	logger  *zap.Logger
	// reg is the process's registry, from the sentinel app (kinds
	// upstreams and config).
	reg *registry.Registry
	// ctx is the context of the config this handler belongs to, and
	// started is set once that config was seen active (kind ready).
	ctx     context.Context
	started *atomic.Bool
}

// responder produces the status code and JSON body of a built-in response.
type responder func(r *http.Request) (status int, body any)

// CaddyModule returns the Caddy module information.
func (Builtin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_builtin",
		New: func() caddy.Module { return new(Builtin) },
	}
}

// Provision sets up the handler.
func (b *Builtin) Provision(ctx caddy.Context) error {
	b.ctx = ctx.Context
	b.started = new(atomic.Bool)
	b.logger = ctx.Logger().With(zap.String("kind", b.Kind), zap.String("route", b.Route))
	b.version = version()
	b.respond = b.responders()[b.Kind] // unknown kinds are reported by Validate
	if b.Kind == KindUpstreams || b.Kind == KindConfig {
		reg, err := registry.From(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Kind, err)
		}
		b.reg = reg
	}
	return nil
}

// Validate ensures the kind is known.
func (b *Builtin) Validate() error {
	responders := b.responders()
	if _, ok := responders[b.Kind]; !ok {
		kinds := make([]string, 0, len(responders))
		for kind := range responders {
			kinds = append(kinds, kind)
		}
		slices.Sort(kinds)
		valid := strings.Join(kinds, ", ")
		if b.Kind == "" {
			return fmt.Errorf("kind is required (valid kinds: %s)", valid)
		}
		return fmt.Errorf("unknown kind %q (valid kinds: %s)", b.Kind, valid)
	}
	return nil
}

// ServeHTTP writes the built-in response; it never calls next.
func (b *Builtin) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if b.respond == nil {
		return caddyhttp.Error(http.StatusInternalServerError,
			fmt.Errorf("sentinel_builtin: kind %q is not provisioned", b.Kind))
	}
	status, body := b.respond(r)
	if e, ok := body.(errorBodyWithID); ok && isGRPC(r) {
		writeGRPCError(w, r, status, e.Error)
		return nil
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError,
			fmt.Errorf("sentinel_builtin: encoding %s response: %w", b.Kind, err))
	}

	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := w.Write(payload); err != nil {
		// the client went away; nothing more can be sent
		b.logger.Debug("writing built-in response", zap.Error(err))
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Builtin)(nil)
	_ caddy.Validator             = (*Builtin)(nil)
	_ caddyhttp.MiddlewareHandler = (*Builtin)(nil)
)
