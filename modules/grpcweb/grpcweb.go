// Package grpcweb provides the `grpc_web` HTTP handler, which translates
// gRPC-Web requests from browsers into gRPC requests for the next handler
// (normally `reverse_proxy` to a gRPC server) and the gRPC responses back
// into gRPC-Web, so that browser clients need no extra proxy.
//
// It implements the gRPC-Web protocol
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md) like
// Envoy's grpc_web filter: binary (`application/grpc-web`,
// `application/grpc-web+proto`) and text (`application/grpc-web-text`,
// base64) requests, unary and server-streaming calls.
package grpcweb

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/internal/grpcstatus"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("grpc_web", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("grpc_web", httpcaddyfile.Before, "reverse_proxy")
}

// Handler is a middleware that translates gRPC-Web to gRPC. It has no
// settings. Place it before `reverse_proxy` in the route to a gRPC
// upstream; the proxy's transport must speak HTTP/2 to the upstream (h2c:
// `"versions": ["h2c", "2"]`, or TLS with HTTP/2), since gRPC needs
// HTTP/2 trailers.
//
// A `POST` request whose `Content-Type` is `application/grpc-web`,
// `application/grpc-web+<codec>`, `application/grpc-web-text` or
// `application/grpc-web-text+<codec>` is passed on as a gRPC request:
//
//   - `Content-Type` becomes `application/grpc[+<codec>]` and `TE: trailers`
//     is set;
//   - for the `-text` types the body is base64-decoded while it streams
//     (padding may appear between messages, as browser clients send it)
//     and `Content-Length` is dropped.
//
// A gRPC response (`Content-Type: application/grpc…`) of the next handler
// is turned into a gRPC-Web response:
//
//   - `Content-Type` becomes `application/grpc-web[-text][+<codec>]`,
//     `Content-Length` and `Trailer` are dropped;
//   - message frames are passed on unchanged (base64-encoded for `-text`,
//     each frame padded on its own) and flushed one by one, so server
//     streaming reaches the client message by message;
//   - the HTTP/2 trailers (`grpc-status`, `grpc-message`, trailer metadata)
//     become a final trailer frame (flag 0x80) of `name: value\r\n` lines
//     with lower-case names;
//   - a trailers-only response (`grpc-status` among the headers, no body)
//     stays one: its status is in the response headers, as the protocol
//     allows.
//
// The call's `grpc-timeout`, if any, also bounds the request: when it has
// passed, the upstream request is canceled and the client gets
// DEADLINE_EXCEEDED.
//
// If the next handler fails before answering (upstream down, timeout…),
// the handler answers with a trailers-only gRPC-Web response whose
// `grpc-status` is derived from the HTTP status of the error as gRPC
// specifies (502, 503, 504, 429 → UNAVAILABLE; 401 → UNAUTHENTICATED;
// 403 → PERMISSION_DENIED; 404 → UNIMPLEMENTED; 400 → INTERNAL; others
// UNKNOWN), so browser clients see a gRPC error. If the upstream stream
// breaks after the response has started, the response ends with a trailer
// frame with UNAVAILABLE when the frames are complete.
//
// Every other request, including CORS preflights (`OPTIONS`) and plain
// gRPC, passes through untouched. CORS is not handled here: put the
// `sentinel_cors` handler in front and expose `grpc-status`,
// `grpc-message` and any metadata headers the browser must read.
type Handler struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.grpc_web",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	return nil
}

// log returns the handler's logger (a no-op one before Provision).
func (h Handler) log() *zap.Logger {
	if h.logger == nil {
		return zap.NewNop()
	}
	return h.logger
}

// webContentType describes the Content-Type of a gRPC-Web request.
type webContentType struct {
	text  bool   // application/grpc-web-text: base64 bodies
	codec string // "" or "+proto", "+json"… as sent
}

// parseContentType recognizes the gRPC-Web content types.
func parseContentType(v string) (webContentType, bool) {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return webContentType{}, false
	}
	rest, ok := strings.CutPrefix(mt, "application/grpc-web")
	if !ok {
		return webContentType{}, false
	}
	var ct webContentType
	if r, ok := strings.CutPrefix(rest, "-text"); ok {
		ct.text, rest = true, r
	}
	if rest != "" && (!strings.HasPrefix(rest, "+") || len(rest) == 1) {
		return webContentType{}, false
	}
	ct.codec = rest
	return ct, true
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	ct, ok := parseContentType(r.Header.Get("Content-Type"))
	if !ok || r.Method != http.MethodPost {
		return next.ServeHTTP(w, r)
	}
	r.Header.Set("Content-Type", "application/grpc"+ct.codec)
	r.Header.Set("Te", "trailers")
	if ct.text {
		r.Body = newTextDecoder(r.Body)
		r.ContentLength = -1
		r.Header.Del("Content-Length")
	}
	// The deadline of the call (grpc-timeout) also bounds the proxying,
	// so that an error after it is reported as DEADLINE_EXCEEDED.
	timeout, hasDeadline := grpcstatus.ParseTimeout(r.Header.Get("Grpc-Timeout"))
	var deadline time.Time
	if hasDeadline {
		deadline = time.Now().Add(timeout)
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		r = r.WithContext(ctx)
	}
	expired := func() bool { return hasDeadline && !time.Now().Before(deadline) }
	rw := newResponseWriter(w, ct)
	defer func() {
		if v := recover(); v != nil {
			// reverse_proxy aborts with http.ErrAbortHandler when the
			// upstream stream breaks after the response has started.
			if v == http.ErrAbortHandler && rw.canEnd() {
				if expired() {
					err = rw.end(statusTrailer(grpcstatus.DeadlineExceeded, "deadline exceeded"))
					return
				}
				h.log().Debug("upstream stream aborted; ending the gRPC-Web response with UNAVAILABLE")
				err = rw.end(statusTrailer(grpcstatus.Unavailable, "upstream stream aborted"))
				return
			}
			panic(v)
		}
	}()
	if err := next.ServeHTTP(rw, r); err != nil {
		if rw.wroteHeader {
			switch {
			case !rw.canEnd():
				return err
			case expired():
				return rw.end(statusTrailer(grpcstatus.DeadlineExceeded, "deadline exceeded"))
			}
			return rw.end(statusTrailer(grpcstatus.Unavailable, "upstream error"))
		}
		if expired() {
			return rw.trailersOnly(grpcstatus.DeadlineExceeded, "deadline exceeded")
		}
		// Answer with a gRPC status that browser clients understand.
		code := http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			code = he.StatusCode
		}
		level := zap.ErrorLevel
		if r.Context().Err() != nil { // the client went away
			level = zap.DebugLevel
		}
		if c := h.log().Check(level, "gRPC-Web request failed; answered with a gRPC status"); c != nil {
			c.Write(zap.Int("http_status", code), zap.Int("grpc_status", grpcstatus.FromHTTP(code)), zap.Error(err))
		}
		return rw.trailersOnly(grpcstatus.FromHTTP(code), http.StatusText(code))
	}
	return rw.finish()
}

// statusTrailer is a trailer with a gRPC status and message.
func statusTrailer(code int, msg string) http.Header {
	return http.Header{"Grpc-Status": {fmt.Sprint(code)}, "Grpc-Message": {msg}}
}

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Handler)
	if err := g.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return g, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	grpc_web [<matcher>]
//
// The directive takes no arguments and no block. It is ordered before
// `reverse_proxy`.
func (g *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		return d.Errf("unrecognized grpc_web subdirective '%s' (grpc_web has no settings)", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
