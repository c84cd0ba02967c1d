// Package timeout provides the `sentinel_timeout` handler, which bounds
// how long the rest of the route (typically a reverse proxy) may take to
// answer a request, and answers 504 Gateway Timeout when it takes longer.
package timeout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Timeout{})
	httpcaddyfile.RegisterHandlerDirective("sentinel_timeout", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_timeout", httpcaddyfile.After, "timeouts")
}

// Timeout is a middleware that gives the next handlers a deadline: the
// request's context is canceled when the timeout elapses, which aborts
// whatever they are waiting for (a reverse proxy's dial, its wait for the
// upstream's response headers, or the transfer of the response body).
//
// If the deadline passes before a response has been started, the client
// gets 504 Gateway Timeout (not the 502 Bad Gateway a reverse proxy
// reports for a failed upstream). If the next handler fails after the
// deadline passed, its error is reported as a 504 error naming the
// timeout too, although a response that had already started cannot
// change its status any more: it is cut short.
//
// The timeout covers the whole exchange, including streamed response
// bodies and upgraded (WebSocket) connections, so it should not be used
// in front of long-lived streams. A client that goes away first is not a
// timeout: that error is passed on unchanged.
type Timeout struct {
	// How long the next handlers may take; required and greater than
	// zero. Accepts Go duration strings such as `30s` or `1m30s` (or an
	// integer number of nanoseconds).
	Timeout caddy.Duration `json:"timeout"`

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Timeout) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_timeout",
		New: func() caddy.Module { return new(Timeout) },
	}
}

// Provision sets up the handler.
func (t *Timeout) Provision(ctx caddy.Context) error {
	t.logger = ctx.Logger()
	return nil
}

// Validate ensures the timeout is positive.
func (t *Timeout) Validate() error {
	if t.Timeout <= 0 {
		return fmt.Errorf("timeout must be greater than zero, got %s", time.Duration(t.Timeout))
	}
	return nil
}

// ServeHTTP calls next with a deadline on the request's context.
func (t *Timeout) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	timeout := time.Duration(t.Timeout)
	cause := &Error{Duration: timeout}
	ctx, cancel := context.WithTimeoutCause(r.Context(), timeout, cause)
	defer cancel()

	tw := &responseWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(tw, r.WithContext(ctx))

	if context.Cause(ctx) != error(cause) {
		// our deadline did not pass (or the client went away first)
		return err
	}
	if err == nil {
		if tw.wroteHeader {
			// the response was written, even if only just in time
			return nil
		}
		err = errors.New("no response was written")
	}
	t.logger.Debug("request timed out",
		zap.Duration("timeout", timeout),
		zap.Bool("response_started", tw.wroteHeader),
		zap.Error(err))
	return caddyhttp.Error(http.StatusGatewayTimeout, timeoutError(cause, err))
}

// timeoutError returns the error reported when the timeout cause elapsed
// and the next handler returned err. A HandlerError from the next handler
// (often a reverse proxy's 502) is kept as text only, so that
// caddyhttp.Error does not adopt its status code.
func timeoutError(cause *Error, err error) error {
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.Err != nil {
		err = he.Err
	}
	if errors.Is(err, cause) {
		return cause
	}
	return fmt.Errorf("%w (%v)", cause, err)
}

// Error is the cause of a request's context being canceled by the
// timeout. It is a net.Error whose Timeout method reports true, and it
// wraps context.DeadlineExceeded.
type Error struct {
	// Duration is the configured timeout that elapsed.
	Duration time.Duration
}

// Error describes the timeout.
func (e *Error) Error() string {
	return fmt.Sprintf("sentinel_timeout: no response within %s", e.Duration)
}

// Timeout reports that this error is a timeout.
func (e *Error) Timeout() bool { return true }

// Temporary reports that the error is temporary; it is part of net.Error.
func (e *Error) Temporary() bool { return true }

// Unwrap returns context.DeadlineExceeded.
func (e *Error) Unwrap() error { return context.DeadlineExceeded }

// Interface guards
var (
	_ caddy.Provisioner           = (*Timeout)(nil)
	_ caddy.Validator             = (*Timeout)(nil)
	_ caddyhttp.MiddlewareHandler = (*Timeout)(nil)
	_ interface{ Timeout() bool } = (*Error)(nil)
)
