// Package httperr carries the client-facing side of a handler error.
//
// Handlers return failures as caddyhttp.Error so that the server's error
// routes (`handle_errors`) and its logs see them. By default an error
// route shows the status, not the error's text, which may hold internal
// details; a *Public error names what the client may read instead.
package httperr

import "errors"

// Public is an error whose Message and Fields the client may see: the
// `sentinel_builtin` error responder (the error route of every listener
// of the KDL adapter) puts them in its JSON body. Err, the cause, is
// only logged.
type Public struct {
	// Message is the body's "error".
	Message string
	// Fields are added to the body (they never replace "error",
	// "status" or "id").
	Fields map[string]string
	// Err is the internal cause (optional).
	Err error
}

// Error is the message and the cause, for the logs.
func (e *Public) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return e.Message + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Public) Unwrap() error { return e.Err }

// As returns the *Public in err's chain, or nil.
func As(err error) *Public {
	var p *Public
	if errors.As(err, &p) {
		return p
	}
	return nil
}
