package adaptive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/tracing"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Transport{})
}

// Transport is Caddy's http transport (every field of
// http.reverse_proxy.transport.http applies) that also feeds the load
// balancer, per target address:
//
//   - the requests in flight, sent and failed (a transport error or a
//     5xx), in the registry. A request is in flight until its response
//     body is closed, so streams and upgraded connections count until
//     they end; a request that fails or that the client cancels is
//     released too;
//   - each outcome, in the feedback store of the registry: the time to the response
//     headers, the status (none for a connection error or timeout) and
//     the Retry-After of a 429 or 503. The selection policies of this
//     package learn from it (peak EWMA, adaptive weights, latency);
//   - each attempt's time to the response headers (or to its failure),
//     in the duration histogram of the target's upstream when the
//     upstream source gave one (upstreamsource: the per-upstream
//     sentinel_upstream_request_duration_seconds);
//   - each attempt, in the request: the targets it was sent to, so that
//     a retry goes to another target (the policies of this package and
//     sentinel_retry skip them), and the number of attempts of a
//     retried request in the access log (upstream_attempts; absent for
//     one attempt).
//
// It also makes the identity headers trustworthy: from a peer that is not
// a trusted proxy, the client's X-Real-IP is replaced by its address and
// its Forwarded is removed (Caddy rewrites only the X-Forwarded-* ones).
//
// The routes of a configuration whose transports have the same settings
// share one http transport (and so its connection pools): a config of
// 10,000 routes to a few backends provisions a few transports, not
// 10,000, and keeps a few pools of idle connections. Transports are never
// shared between two configurations (a reload gets new ones).
//
// Bodyless GET, HEAD and OPTIONS requests to plain-HTTP HTTP/1.1
// upstreams take a direct round trip (direct.go: in the proxy's
// goroutine, with the transport's own pool of idle connections) instead
// of net/http's transport, unless DirectHTTP1 is false; the bookkeeping
// above is the same on both paths.
//
// A request the client cancels is not held against the target. Only
// proxied client requests count: the active health checks of Caddy's
// reverse proxy (which would use this transport) and of the sentinel app
// (which do not) are not fed to the balancer.
type Transport struct {
	reverseproxy.HTTPTransport

	// Whether bodyless GET, HEAD and OPTIONS requests to plain-HTTP
	// HTTP/1.1 upstreams are sent by Sentinel's direct round trip (in the
	// proxy's goroutine, with its own pool of idle connections) instead
	// of net/http's transport. It applies only when the transport uses
	// neither TLS, h2c, HTTP/3, a forward proxy, the PROXY protocol, read
	// or write timeouts, a connection limit nor disabled keep-alives;
	// other requests always go through net/http. Default: true.
	DirectHTTP1 *bool `json:"direct_http1,omitempty"`

	fb  *store
	now func() int64
	// key is the shared transport's key in transports; pooled is set
	// while this transport holds a reference to it.
	key    transportKey
	pooled bool
	// traced is set when the configuration has the tracing app: each
	// attempt gets a client span and the traceparent.
	traced bool
	// direct is the shared transport's direct HTTP/1.1 round trip; nil
	// when off or not applicable.
	direct *directH1
}

// transportKey identifies a shared transport in the feedback store's
// transports pool: the configuration (its
// context, which ends when the configuration is unloaded) and the
// transport's settings as JSON.
type transportKey struct {
	config   context.Context
	settings string
	direct   bool
}

// sharedTransport is a provisioned http transport in transports.
type sharedTransport struct {
	reverseproxy.HTTPTransport
	direct *directH1
}

// Destruct closes the idle connections of the transport, when no route
// uses it any more.
func (s *sharedTransport) Destruct() error {
	if s.direct != nil {
		s.direct.close()
	}
	return s.HTTPTransport.Cleanup()
}

// CaddyModule returns the Caddy module information.
func (Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.sentinel",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision sets up the http transport: the one of an earlier route of
// the configuration with the same settings, or a new one.
func (t *Transport) Provision(ctx caddy.Context) error {
	reg, err := registry.From(ctx)
	if err != nil {
		return fmt.Errorf("sentinel transport: %w", err)
	}
	t.fb = feedbackOf(reg)
	t.now = monotime
	t.traced = tracing.Configured(ctx)
	settings, err := json.Marshal(t.HTTPTransport)
	if err != nil {
		return fmt.Errorf("sentinel transport: settings: %w", err)
	}
	direct := t.DirectHTTP1 == nil || *t.DirectHTTP1
	key := transportKey{config: ctx.Context, settings: string(settings), direct: direct}
	val, _, err := t.fb.transports.LoadOrNew(key, func() (caddy.Destructor, error) {
		s := &sharedTransport{HTTPTransport: t.HTTPTransport}
		if err := s.HTTPTransport.Provision(ctx); err != nil {
			return nil, err
		}
		guardDials(s.HTTPTransport.Transport, reg, ctx.Logger())
		if err := registerDialMetrics(ctx, reg); err != nil {
			return nil, fmt.Errorf("sentinel transport: metrics: %w", err)
		}
		if direct {
			// After guardDials: the direct round trip dials through it.
			s.direct = newDirectH1(&s.HTTPTransport)
		}
		return s, nil
	})
	if err != nil {
		return err
	}
	t.key, t.pooled = key, true
	// The settings are equal; the copy shares the provisioned transport.
	t.HTTPTransport = val.(*sharedTransport).HTTPTransport
	t.direct = val.(*sharedTransport).direct
	return nil
}

// Cleanup releases the shared transport; the last route's release closes
// its idle connections.
func (t *Transport) Cleanup() error {
	if !t.pooled {
		return nil
	}
	t.pooled = false
	_, err := t.fb.transports.Delete(t.key)
	return err
}

// RoundTrip sends the request and feeds its outcome to its target.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Context().Value(caddyhttp.ServerCtxKey) == nil {
		// Not a proxied client request: an active health check.
		return t.HTTPTransport.RoundTrip(req)
	}
	addr := targetAddress(req)
	a := markTried(req, addr)
	forwardedIdentity(req, a)
	tg := t.fb.target(addr)
	tg.stats.Start()
	var sp tracing.Span
	if t.traced {
		sp = tracing.StartUpstream(req, addr, a.len())
	}
	start := t.now()
	res, err := t.roundTrip(req)
	rtt := t.now() - start
	if sp != nil {
		tracing.EndUpstream(sp, res, err)
	}
	if err != nil {
		if errors.Is(req.Context().Err(), context.Canceled) {
			// The client went away: not the target's fault (a deadline
			// that expired is).
			tg.stats.Done(false)
			return nil, err
		}
		a.observed(rtt)
		tg.record(start+rtt, sample{rtt: rtt})
		tg.stats.Done(true)
		return nil, err
	}
	a.observed(rtt)
	s := sample{rtt: rtt, status: res.StatusCode}
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
		s.retryAfter = retryAfter(res.Header.Get("Retry-After"), time.Now())
	}
	tg.record(start+rtt, s)
	body := a.newBody()
	body.ReadCloser, body.target, body.failed = res.Body, tg, res.StatusCode >= 500
	res.Body = body
	return res, nil
}

// roundTrip sends the request: by the direct HTTP/1.1 round trip when it
// takes it, by Caddy's http transport otherwise.
func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	if t.direct != nil {
		t.HTTPTransport.SetScheme(req)
		if key, ok := t.direct.eligible(req); ok {
			return t.direct.roundTrip(req, key)
		}
	}
	return t.HTTPTransport.RoundTrip(req)
}

// targetAddress is the address the request was sent to, as the selection
// policies know it (the upstream's dial address).
func targetAddress(req *http.Request) string {
	if di, ok := reverseproxy.GetDialInfo(req.Context()); ok {
		if di.Upstream != nil && di.Upstream.Dial != "" {
			return di.Upstream.Dial
		}
		if di.Address != "" {
			return di.Address
		}
	}
	host := req.URL.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		// The proxy drops the scheme's default port from the URL.
		if req.URL.Scheme == "https" {
			return net.JoinHostPort(host, "443")
		}
		return net.JoinHostPort(host, "80")
	}
	return host
}

// retryAfter parses a Retry-After value (seconds or an HTTP date) into
// nanoseconds; 0 when absent, invalid or past.
func retryAfter(v string, now time.Time) int64 {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return secs * int64(time.Second)
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return int64(at.Sub(now))
	}
	return 0
}

// releasingBody releases the in-flight count of its target once, when
// the body is closed.
type releasingBody struct {
	io.ReadCloser
	target   *Target
	failed   bool // a 5xx: counted as a failure
	released atomic.Bool
}

// Close closes the body and releases the request.
func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	if b.released.CompareAndSwap(false, true) {
		b.target.stats.Done(b.failed)
	}
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
