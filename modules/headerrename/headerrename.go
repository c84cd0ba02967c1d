// Package headerrename provides the `header_rename` handler, which moves
// request and response header fields to new names.
package headerrename

import (
	"net/http"

	"github.com/sentinel-proxy/sentinel/internal/headerhook"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Rename{})
	httpcaddyfile.RegisterHandlerDirective("header_rename", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("header_rename", httpcaddyfile.After, "header")
}

// Rename is a middleware that renames header fields: all values of the
// old field are moved to the new name, replacing any values the new field
// had. A field that is absent is left alone (and the new field is not
// touched either).
//
// Field names are case-insensitive; the new field is written in canonical
// form (`x-new` becomes `X-New`). All renamings of a side are applied at
// once: every new field gets the values its old field had before any
// renaming, so `{"A": "B", "B": "C"}` moves A to B and B to C, and
// `{"A": "B", "B": "A"}` swaps A and B. If several old fields are renamed
// to the same new name, it gets all their values, in the lexicographic
// order of the old names (canonical form).
//
// The framing and routing fields Host, Content-Length, Transfer-Encoding
// and Connection cannot be renamed, nor be the target of a renaming.
type Rename struct {
	// Request header fields to rename before the request is passed on,
	// keyed by the old name, with the new name as value. Example:
	// `{"X-Old": "X-New"}`.
	Request map[string]string `json:"request,omitempty"`

	// Response header fields to rename, keyed by the old name, with the
	// new name as value. They are renamed when the response header is
	// written (also for 101 Switching Protocols), so fields set by any later
	// handler, such as a proxied upstream, are renamed too.
	Response map[string]string `json:"response,omitempty"`

	request  []renaming
	response []renaming
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Rename) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.header_rename",
		New: func() caddy.Module { return new(Rename) },
	}
}

// Provision sorts and canonicalizes the renamings.
func (h *Rename) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.request = compile(h.Request)
	h.response = compile(h.Response)
	return nil
}

// Validate checks the field names.
func (h *Rename) Validate() error {
	if err := validate("request", h.Request); err != nil {
		return err
	}
	return validate("response", h.Response)
}

// ServeHTTP renames the request fields, and arranges for the response
// fields to be renamed when the response header is written.
func (h *Rename) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if len(h.request) > 0 {
		renameAll(r.Header, h.request)
	}
	if len(h.response) == 0 {
		return next.ServeHTTP(w, r)
	}

	apply := func(hdr http.Header) { renameAll(hdr, h.response) }
	rw := headerhook.Wrap(w, apply)
	err := next.ServeHTTP(rw, r)
	if err != nil && !rw.WroteHeader() {
		// the error response is written to w by the server (or its error
		// routes); rename the fields already set for it as well
		apply(w.Header())
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Rename)(nil)
	_ caddy.Validator             = (*Rename)(nil)
	_ caddyhttp.MiddlewareHandler = (*Rename)(nil)
)
