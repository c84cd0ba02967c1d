package adaptive

import (
	"io"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

func init() {
	caddy.RegisterModule(Transport{})
}

// Transport is Caddy's http transport (every field of
// http.reverse_proxy.transport.http applies) that also counts, per target
// address, the requests in flight, sent and failed (a transport error or
// a 5xx). A request is in flight until its response body is closed, so
// streams and upgraded connections count until they end; a request that
// fails or that the client cancels is released too. Health-check traffic
// does not use this transport.
type Transport struct {
	reverseproxy.HTTPTransport

	reg *registry.Registry
}

// CaddyModule returns the Caddy module information.
func (Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.sentinel",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision sets up the http transport.
func (t *Transport) Provision(ctx caddy.Context) error {
	t.reg = registry.Default
	return t.HTTPTransport.Provision(ctx)
}

// RoundTrip sends the request and counts it against its target.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := t.reg.Stats(req.URL.Host)
	st.Start()
	res, err := t.HTTPTransport.RoundTrip(req)
	if err != nil {
		st.Done(true)
		return nil, err
	}
	res.Body = &releasingBody{ReadCloser: res.Body, release: func() { st.Done(res.StatusCode >= 500) }}
	return res, nil
}

// releasingBody releases the in-flight count once, when the body is
// closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

// Close closes the body and releases the request.
func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// Write passes writes through for upgraded (101) connections, whose body
// is the connection.
func (b *releasingBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, io.ErrClosedPipe
}

// Interface guards
var (
	_ caddy.Provisioner                      = (*Transport)(nil)
	_ http.RoundTripper                      = (*Transport)(nil)
	_ reverseproxy.TLSTransport              = (*Transport)(nil)
	_ reverseproxy.H2CTransport              = (*Transport)(nil)
	_ caddy.CleanerUpper                     = (*Transport)(nil)
	_ reverseproxy.RequestHeaderOpsTransport = (*Transport)(nil)
)
