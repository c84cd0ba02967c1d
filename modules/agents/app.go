package agents

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/reloading"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(Handler{})
}

// App is the `sentinel_agents` app: the external agents of the config
// and the optional live registration listener. Its pools are shared
// through the package registry: an agent whose settings do not change
// keeps its connections across reloads; a changed or removed agent's
// pool drains in the background (in-flight calls get the drain timeout,
// then are cancelled).
type App struct {
	// Agents are the configured agents.
	Agents []*AgentConfig `json:"agents,omitempty"`
	// Registration is the listener live agents connect to (optional).
	Registration *RegistrationConfig `json:"registration,omitempty"`

	pools  map[string]*pool
	keys   []string
	regKey string
	regLn  *regListener
	regCfg *regSettings
	log    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel_agents", New: func() caddy.Module { return new(App) }}
}

// Provision validates the agents and takes their pools from the registry.
func (a *App) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	a.pools = map[string]*pool{}
	if err := metrics.register(ctx); err != nil {
		return fmt.Errorf("registering agent metrics: %w", err)
	}
	for _, c := range a.Agents {
		s, err := c.resolve()
		if err != nil {
			return err
		}
		if a.pools[s.id] != nil {
			return fmt.Errorf("agent %q defined twice", s.id)
		}
		warnPlaintext(a.log, s)
		key := s.id + "#" + s.hash
		// The pool is created here but dialled in Start: provisioning
		// (caddy validate, sentinel validate) touches no network.
		v, loaded, err := reg.usage.LoadOrNew(key, func() (caddy.Destructor, error) {
			return newPool(s, a.log, false), nil
		})
		if err != nil {
			return fmt.Errorf("agent %q: %w", s.id, err)
		}
		a.keys = append(a.keys, key)
		a.pools[s.id] = v.(*pool)
		if !loaded {
			a.log.Info("agent pool created", zap.String("agent", s.id), zap.String("transport", s.network), zap.String("address", s.address), zap.Int("connections", s.connections))
		}
	}
	if a.Registration != nil {
		rs, err := a.Registration.resolve()
		if err != nil {
			return err
		}
		a.regCfg = rs
		if reloading.Replacing() {
			// Claimed here rather than in Start when this config would
			// replace a running one, so that a taken address fails it
			// before any of its apps starts (see reloading.Replacing);
			// Cleanup releases it if the config never starts.
			key, ln, err := claimListener(rs, a.log)
			if err != nil {
				return err
			}
			a.regKey, a.regLn = key, ln
		}
	}
	return nil
}

// Start dials the agents (pools already dialled by the previous config
// keep their connections), makes the app the running one and opens the
// registration listener unless Provision claimed it (when replacing a
// running config); its settings apply from here on.
func (a *App) Start() error {
	for _, p := range a.pools {
		p.start()
	}
	if a.regCfg != nil {
		if a.regLn == nil {
			// The process's first config: a taken address fails it here.
			key, ln, err := claimListener(a.regCfg, a.log)
			if err != nil {
				return err
			}
			a.regKey, a.regLn = key, ln
		}
		a.regLn.use(a.regCfg)
	}
	reg.current.Store(a)
	return nil
}

// Stop leaves the running state to the next config.
func (a *App) Stop() error {
	reg.current.CompareAndSwap(a, nil)
	return nil
}

// Cleanup releases the app's pools and listener; those no config uses
// any more are drained in the background.
func (a *App) Cleanup() error {
	reg.current.CompareAndSwap(a, nil)
	for _, k := range a.keys {
		_, _ = reg.usage.Delete(k)
	}
	a.keys = nil
	if a.regKey != "" {
		_, _ = reg.listeners.Delete(a.regKey)
		a.regKey, a.regLn = "", nil
	}
	return nil
}

// pool returns the pool of an agent id for this config.
func (a *App) pool(id string) *pool { return reg.lookup(a, id) }

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

// warnPlaintext warns when s is a gRPC agent reached without TLS on a
// non-loopback address (plaintextRemote).
func warnPlaintext(log *zap.Logger, s *settings) {
	if plaintextRemote(s) {
		log.Warn("gRPC agent without TLS on a non-loopback address: request headers (cookies, Authorization) and bodies reach it in clear; use https:// and tls { }",
			zap.String("agent", s.id), zap.String("address", s.address))
	}
}

// plaintextRemote reports whether s is a gRPC agent reached without TLS
// at an address that is not loopback (a host name other than localhost
// counts as remote).
func plaintextRemote(s *settings) bool {
	if s.network != "grpc" || s.grpcTLS {
		return false
	}
	host, _, err := net.SplitHostPort(s.address)
	if err != nil {
		host = s.address
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsLoopback()
}
