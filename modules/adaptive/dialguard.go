package adaptive

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

// forwardProxyVar is the request variable in which Caddy's http
// transport notes the forward proxy a request goes through.
const forwardProxyVar = "reverse_proxy.proxy"

// guardDials makes the dials of t check the address they connected to
// against the registry's target policy when the target was added through
// the control-plane API with a host name (registry.Registry.CheckDial):
// the API checks such a target's addresses when it is added, but the
// name is resolved again at every dial, and could then resolve to an
// address the API refuses (DNS rebinding: loopback, a cloud metadata
// service, the proxy's own listeners). A refused connection is closed
// before a request is written on it, logged, counted in the registry,
// and fails the attempt as a dial error does. Other targets (IP
// literals, the configuration's) pay one lock-free map lookup per new
// connection, none when the API added no host-name target.
//
// A connection opened through a forward proxy (network_proxy) reaches
// the proxy, which resolves the name itself: it is not checked.
func guardDials(t *http.Transport, reg *registry.Registry, logger *zap.Logger) {
	if t == nil {
		return
	}
	check := func(ctx context.Context, addr string, conn net.Conn) error {
		target := addr
		if di, ok := reverseproxy.GetDialInfo(ctx); ok && di.Address != "" {
			target = di.Address
		}
		if !reg.Guarded(target) || caddyhttp.GetVar(ctx, forwardProxyVar) != nil {
			return nil
		}
		if err := reg.CheckDial(target, conn.RemoteAddr()); err != nil {
			_ = conn.Close()
			logger.Error("upstream connection refused by the target policy", zap.String("target", target),
				zap.String("remote", conn.RemoteAddr().String()), zap.Error(err))
			return reverseproxy.NewDialError(err)
		}
		return nil
	}
	guard := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if err := check(ctx, addr, conn); err != nil {
				return nil, err
			}
			return conn, nil
		}
	}
	if t.DialContext != nil {
		t.DialContext = guard(t.DialContext)
	}
	if t.DialTLSContext != nil {
		t.DialTLSContext = guard(t.DialTLSContext)
	}
}

// registerDialMetrics registers sentinel_upstream_dials_refused_total,
// the connections the target policy refused (registry.DialsRefused), on
// the config's metrics registry.
func registerDialMetrics(ctx caddy.Context, reg *registry.Registry) error {
	m := ctx.GetMetricsRegistry()
	if m == nil {
		return nil
	}
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_upstream_dials_refused_total",
		Help: "Connections to targets added through the control-plane API that the target policy refused at dial time (the host name resolved to a refused address).",
	}, func() float64 { return float64(reg.DialsRefused()) })
	if err := m.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return err
		}
	}
	return nil
}
