// Package l4 is Sentinel's minimal layer-4 Caddy app (`sentinel_l4`), what
// the Gateway API's TLSRoute (TLS passthrough by SNI) and TCPRoute need:
// listeners that hand each connection, unchanged, to a weighted backend.
// A TLS passthrough server reads the client's ClientHello (bounded in size
// and time) to pick the route by its server name, then replays those bytes
// to the backend; the TLS session stays end to end between client and
// backend. A plain server splices every connection to its route's
// backends.
//
// It is written here rather than taken from github.com/mholt/caddy-l4: see
// docs/gateway-api.md ("Layer 4").
package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/reloading"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults of a Server's limits.
const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultDialTimeout      = 10 * time.Second
	// defaultIdleTimeout closes a spliced connection after this long
	// without a byte either way (Envoy's TCP proxy default).
	defaultIdleTimeout = time.Hour
	// defaultMaxConnections bounds a server's connections at once.
	defaultMaxConnections = 10000
	// maxClientHello bounds what a passthrough server reads before it
	// has the ClientHello: a TLS record is at most 16 KiB plus its
	// header, and a ClientHello fits in one record in practice.
	maxClientHello = 16*1024 + 5
)

// App is the `sentinel_l4` Caddy app: layer-4 servers by name.
type App struct {
	// Servers are the layer-4 servers by name.
	Servers map[string]*Server `json:"servers,omitempty"`

	logger    *zap.Logger
	listeners []net.Listener
	wg        *sync.WaitGroup
}

// Server is one layer-4 server: its listen addresses and routes.
type Server struct {
	// Listen are the network addresses to listen on (Caddy's network
	// address syntax, TCP only), for example "0.0.0.0:443".
	Listen []string `json:"listen"`
	// TLSPassthrough makes the server read each connection's TLS
	// ClientHello and pick the first route whose server_names match its
	// server name (SNI); the bytes read are replayed to the backend.
	// Without it, every connection goes to the first route.
	TLSPassthrough bool `json:"tls_passthrough,omitempty"`
	// Routes are tried in order.
	Routes []*Route `json:"routes,omitempty"`
	// HandshakeTimeout bounds the time a passthrough server waits for the
	// ClientHello (default 10s).
	HandshakeTimeout caddy.Duration `json:"handshake_timeout,omitempty"`
	// DialTimeout bounds the connection to a backend (default 10s).
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// IdleTimeout closes a connection (both sides) after this long
	// without a byte read either way, or a write blocked as long
	// (default 1h; negative: never).
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// MaxConnections bounds the server's connections at once, on all
	// its listeners (default 10000; negative: no limit). A connection
	// above it is closed at once, without reaching a backend. Connections
	// of a previous config (before a reload) are not counted.
	MaxConnections int `json:"max_connections,omitempty"`

	slots chan struct{} // nil: no limit
}

// Route sends connections to weighted upstreams.
type Route struct {
	// ServerNames are the server names (SNI) the route takes on a
	// passthrough server: exact ("app.example.com") or a wildcard
	// ("*.example.com", one label or more before the suffix). Empty:
	// every name, a ClientHello without one included.
	ServerNames []string `json:"server_names,omitempty"`
	// Upstreams are the backends, picked by smooth weighted round robin.
	// A route without upstreams (or all of weight 0) closes the
	// connections it takes.
	Upstreams []*Upstream `json:"upstreams,omitempty"`

	mu      sync.Mutex
	current []int
}

// Upstream is one backend of a route.
type Upstream struct {
	// Dial is the backend's address (host:port).
	Dial string `json:"dial,omitempty"`
	// Reject makes the connections picked for this upstream closed
	// instead (the share of a Gateway API route's invalid backends).
	Reject bool `json:"reject,omitempty"`
	// Weight is the upstream's share of the connections (default 1, 0
	// takes none).
	Weight *int `json:"weight,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sentinel_l4",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision validates the servers. When the config would replace a
// running one, it checks the listen addresses (see
// reloading.CheckListenersUnlessSentinel).
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.wg = new(sync.WaitGroup)
	for name, s := range a.Servers {
		if s == nil {
			return fmt.Errorf("sentinel_l4: server %q: empty", name)
		}
		if len(s.Listen) == 0 {
			return fmt.Errorf("sentinel_l4: server %q: no listen address", name)
		}
		for i, r := range s.Routes {
			if r == nil {
				return fmt.Errorf("sentinel_l4: server %q: routes[%d]: empty", name, i)
			}
			for _, n := range r.ServerNames {
				if n == "" || n == "*" || (len(n) > 1 && n[0] == '*' && n[1] != '.') {
					return fmt.Errorf("sentinel_l4: server %q: routes[%d]: server name %q: not a hostname or *.suffix", name, i, n)
				}
			}
			for j, u := range r.Upstreams {
				if u == nil {
					return fmt.Errorf("sentinel_l4: server %q: routes[%d].upstreams[%d]: empty", name, i, j)
				}
				if u.Reject {
					continue
				}
				if _, _, err := net.SplitHostPort(u.Dial); err != nil {
					return fmt.Errorf("sentinel_l4: server %q: routes[%d].upstreams[%d]: dial %q: %w", name, i, j, u.Dial, err)
				}
				if u.Weight != nil && *u.Weight < 0 {
					return fmt.Errorf("sentinel_l4: server %q: routes[%d].upstreams[%d]: negative weight %d", name, i, j, *u.Weight)
				}
			}
			r.current = make([]int, len(r.Upstreams))
		}
		switch {
		case s.MaxConnections == 0:
			s.slots = make(chan struct{}, defaultMaxConnections)
		case s.MaxConnections > 0:
			s.slots = make(chan struct{}, s.MaxConnections)
		}
	}
	if reloading.Replacing() {
		// A taken address fails the load here, before any app of the
		// config starts, rather than in Start, after the http app's
		// servers took connections of the running config; the http
		// app's addresses too when the config has no sentinel app to
		// check them (the Gateway API controller's configs).
		if err := reloading.CheckListenersUnlessSentinel(ctx); err != nil {
			return fmt.Errorf("sentinel_l4: checking the listen addresses: %w", err)
		}
	}
	return nil
}

// TCPListenAddresses returns the servers' listen addresses by server
// name (reloading.TCPListenApp).
func (a *App) TCPListenAddresses() map[string][]string {
	out := make(map[string][]string, len(a.Servers))
	for name, s := range a.Servers {
		if s != nil {
			out[name] = s.Listen
		}
	}
	return out
}

// Start opens the servers' listeners and serves them.
func (a *App) Start() error {
	for name, s := range a.Servers {
		for _, addr := range s.Listen {
			na, err := caddy.ParseNetworkAddress(addr)
			if err != nil {
				a.closeListeners()
				return fmt.Errorf("sentinel_l4: server %q: listen %q: %w", name, addr, err)
			}
			if na.Network != "tcp" && na.Network != "tcp4" && na.Network != "tcp6" {
				a.closeListeners()
				return fmt.Errorf("sentinel_l4: server %q: listen %q: only TCP is supported", name, addr)
			}
			for p := uint(0); p < na.PortRangeSize(); p++ {
				ln, err := na.Listen(context.Background(), p, net.ListenConfig{})
				if err != nil {
					a.closeListeners()
					return fmt.Errorf("sentinel_l4: server %q: listen %q: %w", name, addr, err)
				}
				l, ok := ln.(net.Listener)
				if !ok {
					a.closeListeners()
					return fmt.Errorf("sentinel_l4: server %q: listen %q: not a stream listener", name, addr)
				}
				a.listeners = append(a.listeners, l)
				a.wg.Add(1)
				go a.serve(s, l)
			}
		}
	}
	return nil
}

// Stop closes the listeners. Connections already spliced run until one
// side closes them (a reload does not cut them).
func (a *App) Stop() error {
	a.closeListeners()
	a.wg.Wait()
	return nil
}

func (a *App) closeListeners() {
	for _, l := range a.listeners {
		_ = l.Close()
	}
	a.listeners = nil
}

// serve accepts connections until l is closed.
func (a *App) serve(s *Server, l net.Listener) {
	defer a.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if s.slots != nil {
			select {
			case s.slots <- struct{}{}:
			default:
				a.logger.Debug("connection limit reached: closing", zap.String("remote", c.RemoteAddr().String()), zap.Int("max_connections", cap(s.slots)))
				_ = c.Close()
				continue
			}
		}
		go func() {
			defer func() {
				if s.slots != nil {
					<-s.slots
				}
			}()
			a.handle(s, c)
		}()
	}
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)

	_ reloading.TCPListenApp = (*App)(nil)
)
