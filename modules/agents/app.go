package agents

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
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
	}
	return nil
}

// Start dials the agents (pools already dialled by the previous config
// keep their connections), makes the app the running one and opens the
// registration listener.
func (a *App) Start() error {
	for _, p := range a.pools {
		p.start()
	}
	if a.regCfg != nil {
		key, err := startListener(a.regCfg, a.log)
		if err != nil {
			return err
		}
		a.regKey = key
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
		a.regKey = ""
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
