package shadow

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/metrics"
)

// copyBody reads the body of r for the copy, when the handler copies
// bodies and r has one. It returns the copy's body (nil: none), the
// request to pass on (r, or r with a body that replays what was read and
// streams the rest) and, when the copy is not to be sent, the drop
// reason.
//
// A body above MaxBodyBytes is read no further than the limit plus one
// byte: the route's upstream gets what was read followed by the rest of
// the client's body, as it comes.
func (h *Handler) copyBody(r *http.Request) ([]byte, *http.Request, string) {
	if !h.BufferBody || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, r, ""
	}
	if r.ContentLength > h.MaxBodyBytes {
		return nil, r, metrics.ShadowBodyTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	orig := r.Body
	_, err := buf.ReadFrom(io.LimitReader(orig, h.MaxBodyBytes+1))
	read := buf.Bytes()
	r2 := *r
	switch {
	case err != nil:
		// The client's body failed (it went away, or sent a malformed
		// chunk): the route's upstream gets the bytes read and then the
		// same error from the body.
		r2.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(read), orig), Closer: orig}
		return nil, &r2, metrics.ShadowBodyError
	case int64(len(read)) > h.MaxBodyBytes:
		r2.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(read), orig), Closer: orig}
		return nil, &r2, metrics.ShadowBodyTooLarge
	}
	// The whole body was read: the route's upstream and the copy share
	// the bytes (neither writes them).
	r2.Body = &replayBody{Reader: bytes.NewReader(read), Closer: orig}
	return read, &r2, ""
}

// replayBody is a request body that replays the bytes read for the copy
// and closes the client's body.
type replayBody struct {
	io.Reader
	io.Closer
}

// newCopy returns the copy of r to send: its method, URL, headers (with
// MarkerHeader) and body (nil: none), in a context of its own, not
// cancelled when r ends. The copy keeps only r's Caddy server and local
// address: the rest of r's context (its variables, replacer, idle
// timeouts on the client connection) belongs to r.
func newCopy(r *http.Request, body []byte) *http.Request {
	ctx := context.Background()
	if v := r.Context().Value(http.LocalAddrContextKey); v != nil {
		ctx = context.WithValue(ctx, http.LocalAddrContextKey, v)
	}
	if v := r.Context().Value(caddyhttp.ServerCtxKey); v != nil {
		ctx = context.WithValue(ctx, caddyhttp.ServerCtxKey, v)
	}
	c := r.Clone(ctx)
	c.Header.Set(MarkerHeader, "true")
	c.Header.Del("Expect")
	c.TransferEncoding = nil
	c.Trailer = nil
	if body == nil {
		c.Body, c.ContentLength, c.GetBody = http.NoBody, 0, nil
		c.Header.Del("Content-Length")
		return c
	}
	c.ContentLength = int64(len(body))
	c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	c.Body, _ = c.GetBody()
	return c
}

// prepare gives the copy what Caddy's server gives a request before its
// handlers run: a replacer, variables, the original request and log
// fields of its own.
func prepare(req *http.Request, w http.ResponseWriter) *http.Request {
	srv, _ := req.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, srv)
}

// discard is the response writer of the copies: the response is read
// and dropped.
type discard struct {
	header http.Header
	status int
}

// Header returns the response header map.
func (d *discard) Header() http.Header {
	if d.header == nil {
		d.header = make(http.Header)
	}
	return d.header
}

// Write drops the bytes.
func (d *discard) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(p), nil
}

// WriteHeader records the status.
func (d *discard) WriteHeader(status int) {
	if d.status == 0 && status >= 200 {
		d.status = status
	}
}

// Flush does nothing: nothing is buffered.
func (d *discard) Flush() {}
