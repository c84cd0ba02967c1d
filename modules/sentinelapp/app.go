// Package sentinelapp is the Caddy app `sentinel`: it reconciles the
// process registry (upstreams, targets, route flags) with each config,
// runs the active health checks of the registry's targets, persists the
// changes made through the control plane, and serves the control-plane
// API (/api/v1) on its own listener.
package sentinelapp

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/modules/controlapi"
	"github.com/sentinel-proxy/sentinel/modules/registry"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `sentinel` app.
type App struct {
	// Upstreams are the upstreams the configuration declares. Targets
	// added or changed through the API are kept across config loads
	// while their upstream stays in the configuration.
	Upstreams []UpstreamConfig `json:"upstreams,omitempty"`

	// Routes are the ids of the configured routes, which the API can
	// disable and enable.
	Routes []string `json:"routes,omitempty"`

	// API configures the control-plane API. Without it, no API listens.
	API *controlapi.Config `json:"api,omitempty"`

	// StateFile, when set, is where the changes made through the API are
	// saved (atomically) and read back when the process starts.
	StateFile string `json:"state_file,omitempty"`

	// ConfigFile is the configuration file this config was adapted from;
	// POST /api/v1/config/reload reads it again.
	ConfigFile string `json:"config_file,omitempty"`

	// ConfigAdapter is the adapter of ConfigFile (default "kdl").
	ConfigAdapter string `json:"config_adapter,omitempty"`

	reg    *registry.Registry
	logger *zap.Logger
	ctx    caddy.Context
	specs  []registry.UpstreamSpec
	checks []*checker
	stop   chan struct{}
	api    *apiHandle
}

// UpstreamConfig is a declared upstream.
type UpstreamConfig struct {
	// ID is the upstream id, used by the `sentinel` upstream source.
	ID string `json:"id"`
	// Targets are the declared targets.
	Targets []registry.TargetSpec `json:"targets,omitempty"`
	// HealthCheck, when set, actively checks every target of the
	// upstream (also those added through the API).
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sentinel",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision prepares the registry for this config: upstreams it does not
// know yet are added (the new config's routes need them as soon as its
// servers start); everything else changes at Start, once the whole config
// loaded, so that a config that fails to load changes nothing.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.reg = registry.Default
	specs := make([]registry.UpstreamSpec, 0, len(a.Upstreams))
	for _, u := range a.Upstreams {
		specs = append(specs, registry.UpstreamSpec{ID: u.ID, Targets: u.Targets})
		if u.HealthCheck != nil {
			c, err := newChecker(u.ID, *u.HealthCheck, a.reg, a.logger)
			if err != nil {
				return fmt.Errorf("upstream %q: health check: %w", u.ID, err)
			}
			a.checks = append(a.checks, c)
		}
	}
	a.specs = specs
	a.reg.Prepare(specs)
	if a.StateFile != "" {
		if _, err := os.Stat(a.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state file: %w", err)
		}
	}
	if a.API != nil {
		if err := a.API.Validate(); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	return nil
}

// Validate checks the app's config.
func (a *App) Validate() error {
	seen := map[string]bool{}
	for _, u := range a.Upstreams {
		if u.ID == "" {
			return fmt.Errorf("an upstream has no id")
		}
		if seen[u.ID] {
			return fmt.Errorf("upstream %q declared twice", u.ID)
		}
		seen[u.ID] = true
		for _, t := range u.Targets {
			if err := registry.ValidateTarget(registry.Target{Address: t.Address, Weight: t.Weight}); err != nil {
				return fmt.Errorf("upstream %q: %w", u.ID, err)
			}
		}
	}
	return nil
}

// Start reconciles the registry with this config (restoring the state
// file when the process starts), then starts the health checks, the drain
// expiry, persistence and the API.
func (a *App) Start() error {
	a.reg.Reconcile(a.specs, a.Routes)
	if a.StateFile != "" && a.reg.FirstLoad(a.StateFile) {
		data, err := os.ReadFile(a.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("reading state file: %w", err)
		default:
			if err := a.reg.Restore(data); err != nil {
				return fmt.Errorf("%s: %w", a.StateFile, err)
			}
			a.logger.Info("restored control-plane changes", zap.String("state_file", a.StateFile))
		}
	}
	a.stop = make(chan struct{})
	for _, c := range a.checks {
		go c.run(a.stop)
	}
	go a.expireLoop(a.stop)
	if a.StateFile != "" {
		path, logger, reg := a.StateFile, a.logger, a.reg
		reg.OnChange(func() {
			data, err := reg.Snapshot()
			if err == nil {
				err = registry.WriteFile(path, data)
			}
			if err != nil {
				logger.Error("saving control-plane state", zap.String("state_file", path), zap.Error(err))
			}
		})
	} else {
		a.reg.OnChange(nil)
	}
	if a.API != nil {
		h, err := startAPI(a)
		if err != nil {
			close(a.stop)
			return fmt.Errorf("control-plane API: %w", err)
		}
		a.api = h
	}
	return nil
}

// Stop stops what Start started. The API listener stays up while a newer
// config still uses it (see apiHandle).
func (a *App) Stop() error {
	if a.stop != nil {
		close(a.stop)
		a.stop = nil
	}
	if a.api != nil {
		a.api.release()
		a.api = nil
	}
	return nil
}

// sweepInterval is how often the counters of addresses that are no
// longer targets are swept (see registry.Sweep).
const sweepInterval = time.Minute

// expireLoop removes draining targets whose drain timeout passed, and
// sweeps the per-address state of old targets.
func (a *App) expireLoop(stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if n := a.reg.Expire(now); n > 0 {
				a.logger.Info("removed targets whose drain timed out", zap.Int("count", n))
			}
			if now.Sub(lastSweep) >= sweepInterval {
				lastSweep = now
				if gone := a.reg.Sweep(); len(gone) > 0 {
					a.logger.Debug("forgot the counters of old target addresses", zap.Int("count", len(gone)))
				}
			}
		}
	}
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
