// Package sentinelapp is the Caddy app `sentinel`: it owns the process's
// registry (upstreams, targets, route flags), reconciles it with each config,
// runs the active health checks of the registry's targets, persists the
// changes made through the control plane, and serves the control-plane
// API (/api/v1) on its own listener.
//
// A config changes the registry only once it has started as a whole:
// Provision stages the upstreams the new config's routes need (and,
// when the config would replace a running one, claims the API listener
// and checks that the http app's listen addresses can be bound, so that
// a taken address fails the load before any of its HTTP servers
// listens), Start starts the health checks, and the commit —
// on Caddy's "started" event, emitted after every app of the config
// started — reconciles the registry, loads or switches the state store
// and hands the API listener to the new config. A config that fails to
// start (another app's Start fails, the API address is taken) is cleaned
// up without a commit, and the running config keeps its registry state.
//
// The other modules reach the registry through their config's app
// (registry.From, which calls ctx.App("sentinel")), as Caddy's modules
// reach the tls app. A config without a `sentinel` app gets an empty one
// from Caddy: an app that declares nothing leaves the registry as it is
// (no reconcile, no store switch, no loop).
package sentinelapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/reloading"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/controlapi"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(App{})
}

// processRegistry is the registry of the process. Like the certificate
// cache of Caddy's tls app, it is made once and shared by the apps of
// every config, so that what the control-plane API changed survives
// config loads; each config's app reconciles it at its commit. Only this
// package knows it: the modules get it from their config's app
// ((*App).Registry, through registry.From).
var processRegistry = registry.New()

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

	// Store, instead of StateFile, is where the API-made state lives: a
	// module of the sentinel.stores namespace, e.g. {"store": "etcd",
	// "endpoints": [...]} for a fleet whose replicas share their state
	// (docs/fleet.md).
	Store json.RawMessage `json:"store,omitempty" caddy:"namespace=sentinel.stores inline_key=store"`

	// ConfigFile is the configuration file this config was adapted from;
	// POST /api/v1/config/reload reads it again.
	ConfigFile string `json:"config_file,omitempty"`

	// ConfigAdapter is the adapter of ConfigFile (default "kdl").
	ConfigAdapter string `json:"config_adapter,omitempty"`

	// OwnAddresses are addresses of this proxy (host:port) besides its
	// HTTP listeners and the API's, which targets added through the API
	// may never point at; the KDL adapter lists Caddy's admin endpoint
	// here. Caddy's default admin address is always included.
	OwnAddresses []string `json:"own_addresses,omitempty"`

	reg    *registry.Registry
	store  registry.Store
	logger *zap.Logger
	audit  *zap.Logger
	trail  *audit.App // the audit trail; nil: off
	ctx    caddy.Context
	specs  []registry.UpstreamSpec
	checks []*checker
	// discoverers are the loaded discoveries, by upstream id.
	discoverers map[string]registry.Discoverer
	// generation is what Prepare staged for this config.
	generation uint64
	run        *running
	api        *apiHandle
	handler    *controlapi.Server
}

// running is the state of a provisioned app (behind a pointer: the app
// struct is copied by value in CaddyModule).
type running struct {
	// committed is set once the config started and was made the
	// registry's (see commit).
	committed atomic.Bool
	stop      chan struct{}
	loops     sync.WaitGroup
	// found is the last set each discoverer published, and live says
	// that the config was committed, so that what discoverers publish
	// goes to the registry (before, it waits in found); both under
	// foundMu.
	foundMu sync.Mutex
	found   map[string][]registry.TargetSpec
	live    bool
	// validators bounds the validations running in child processes
	// (validateSlots).
	validators chan struct{}
}

// UpstreamConfig is a declared upstream.
type UpstreamConfig struct {
	// ID is the upstream id, used by the `sentinel` upstream source.
	ID string `json:"id"`
	// Targets are the declared targets.
	Targets []registry.TargetSpec `json:"targets,omitempty"`
	// HealthCheck, when set, actively checks every target of the
	// upstream (also those added through the API or discovered).
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// Discovery, when set, finds targets of the upstream besides the
	// declared ones, while this config runs: a module of the
	// sentinel.discovery namespace, e.g. {"kind": "dns", "name":
	// "api.internal", "port": 8080} (docs/discovery.md). Discovered
	// targets have the origin "discovery"; a failed lookup keeps the
	// last good set.
	Discovery json.RawMessage `json:"discovery,omitempty" caddy:"namespace=sentinel.discovery inline_key=kind"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sentinel",
		New: func() caddy.Module { return new(App) },
	}
}

// Registry returns the registry of the process (the same for every
// config's app).
func (*App) Registry() *registry.Registry { return processRegistry }

// passive reports whether the app declares nothing — as the app Caddy
// creates for a config without one, when a module loads it to reach the
// registry. A passive app leaves the registry as it is.
func (a *App) passive() bool {
	return len(a.Upstreams) == 0 && len(a.Routes) == 0 && a.API == nil && a.StateFile == "" && a.Store == nil &&
		a.ConfigFile == "" && a.ConfigAdapter == "" && len(a.OwnAddresses) == 0
}

// Provision stages this config in the registry: upstreams it does not
// know yet are added for the new config's routes (discarded again if the
// config never starts); everything else changes at the commit.
// When the config would replace a running one, the API listener is
// claimed and the listen addresses of the http and sentinel_l4 apps are
// checked (reloading.CheckListeners), so that the load fails before any
// server of the new config takes a connection.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.run = &running{validators: make(chan struct{}, validateSlots)}
	a.logger = ctx.Logger()
	a.audit = a.logger.Named("audit")
	a.reg = a.Registry()
	if a.passive() {
		return nil
	}
	trail, err := audit.Lookup(ctx)
	if err != nil {
		return err
	}
	a.trail = trail
	specs := make([]registry.UpstreamSpec, 0, len(a.Upstreams))
	checks := map[builtinKey]Checker{}
	for i := range a.Upstreams {
		u := &a.Upstreams[i]
		specs = append(specs, registry.UpstreamSpec{ID: u.ID, Targets: u.Targets, Discovery: u.Discovery != nil})
		if u.Discovery != nil {
			m, err := ctx.LoadModule(u, "Discovery")
			if err != nil {
				return fmt.Errorf("upstream %q: loading its discovery: %w", u.ID, err)
			}
			d, ok := m.(registry.Discoverer)
			if !ok {
				return fmt.Errorf("upstream %q: the discovery module %T is not a registry.Discoverer", u.ID, m)
			}
			if a.discoverers == nil {
				a.discoverers = map[string]registry.Discoverer{}
			}
			a.discoverers[u.ID] = d
		}
		if u.HealthCheck != nil {
			c, err := newSharedChecker(ctx, u.ID, *u.HealthCheck, a.reg, a.logger, checks)
			if err != nil {
				return fmt.Errorf("upstream %q: health check: %w", u.ID, err)
			}
			a.checks = append(a.checks, c)
		}
	}
	a.specs = specs
	if a.Store != nil {
		if a.StateFile != "" {
			return errors.New("state_file and store exclude each other: choose one home for the API-made state")
		}
		m, err := ctx.LoadModule(a, "Store")
		if err != nil {
			return fmt.Errorf("loading the state store: %w", err)
		}
		st, ok := m.(registry.Store)
		if !ok {
			return fmt.Errorf("the state store module %T is not a registry.Store", m)
		}
		a.store = st
	}
	if a.API != nil {
		if err := a.API.Validate(); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		h, err := a.newHandler()
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		a.handler = h
	}
	events, err := ctx.App("events")
	if err != nil {
		return fmt.Errorf("loading the events app: %w", err)
	}
	if err := events.(*caddyevents.App).On("started", commitHandler{a}); err != nil {
		return fmt.Errorf("subscribing to the started event: %w", err)
	}
	if a.API != nil && replacing() {
		// Claimed here rather than in Start when this config would
		// replace a running one: see replacing.
		h, err := claimAPI(a)
		if err != nil {
			return fmt.Errorf("control-plane API: %w", err)
		}
		a.api = h
	}
	a.generation = a.reg.Prepare(specs)
	if replacing() {
		// Last, once the upstreams are staged: it may provision the
		// http app, whose handlers look them up.
		if err := reloading.CheckListeners(ctx); err != nil {
			return err
		}
	}
	return nil
}

// replacing reports whether a config is running in this process, which a
// config being provisioned would replace if it starts: the API listener
// of such a config is claimed in Provision (see reloading.Replacing).
func replacing() bool { return reloading.Replacing() }

// ChecksListeners reports whether the app's Provision checks the
// config's listen addresses when it replaces a running config
// (reloading.CheckListeners): a passive app does not, which leaves the
// check to the sentinel_l4 app when the config has one.
func (a *App) ChecksListeners() bool { return !a.passive() }

var _ reloading.ListenerChecker = (*App)(nil)

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
		for i, t := range u.Targets {
			w := t.Weight
			if w == 0 {
				w = 1 // absent
			}
			if err := registry.ValidateTarget(registry.Target{Address: t.Address, Weight: w}); err != nil {
				return fmt.Errorf("upstream %q: targets[%d]: %w", u.ID, i, err)
			}
		}
	}
	return nil
}

// Start claims the API listener unless Provision did (the process's
// first config: a taken address fails it here) and starts the health
// checks (they check once the previous
// config's checkers stopped, see runChecks) and the drain expiry. The
// registry changes at the commit.
func (a *App) Start() error {
	if a.passive() {
		return nil
	}
	a.run.stop = make(chan struct{})
	stop := a.run.stop
	a.startDiscovery(stop)
	if len(a.checks) > 0 {
		a.run.loops.Add(1)
		go func() {
			defer a.run.loops.Done()
			a.runChecks(stop)
		}()
	}
	if a.API != nil && a.api == nil {
		h, err := claimAPI(a)
		if err != nil {
			a.stopLoops()
			return fmt.Errorf("control-plane API: %w", err)
		}
		a.api = h
	}
	a.run.loops.Add(1)
	go func() {
		defer a.run.loops.Done()
		a.expireLoop(stop)
	}()
	a.auditLoad()
	return nil
}

// checksTurnKey is the key of the registry's checks turn: a channel of
// capacity 1 that the checkers of one config at a time hold.
type checksTurnKey struct{}

// runChecks runs the health checks until stop, once the checkers of the
// config this one replaces have stopped: Caddy starts a new config before
// it stops the old one, and the old config's Stop (which waits for its
// checkers) hands the turn over, so that the checks of two configs never
// overlap. A config stopped before its turn never checks.
func (a *App) runChecks(stop <-chan struct{}) {
	turn := a.reg.Attached(checksTurnKey{}, func() any { return make(chan struct{}, 1) }).(chan struct{})
	select {
	case turn <- struct{}{}:
	case <-stop:
		return
	}
	defer func() { <-turn }()
	var checks sync.WaitGroup
	for _, c := range a.checks {
		checks.Add(1)
		go func() {
			defer checks.Done()
			c.run(stop)
		}()
	}
	checks.Wait()
}

// commitHandler commits its app when Caddy says its config started.
type commitHandler struct{ a *App }

// Handle commits the app.
func (h commitHandler) Handle(context.Context, caddy.Event) error {
	h.a.commit()
	return nil
}

// commit makes this config the registry's: the configured upstreams and
// routes become the base of the registry, the state store is loaded (at
// the process's first config) or switched to, and the API listener
// answers with this config's handler.
func (a *App) commit() {
	a.reg.Commit(a.generation)
	a.reg.Reconcile(a.specs, a.Routes)
	a.goLive()
	store := a.store
	if a.StateFile != "" {
		store = registry.FileStore{Path: a.StateFile}
	}
	if err := a.reg.UseStore(store); err != nil {
		a.logger.Error("control-plane state not restored", zap.Error(err))
	} else if st := a.reg.Status(); store != nil && !st.Loaded.IsZero() {
		a.logger.Info("control-plane state", zap.String("store", st.Store))
	}
	if a.api != nil {
		a.api.serve(a.handler)
	}
	// The dial-time check of the API's targets follows the running
	// config's API (none: the default policy).
	var policy *registry.TargetPolicy
	if a.handler != nil {
		policy = a.handler.TargetPolicy()
	}
	a.reg.SetTargetPolicy(policy)
	a.run.committed.Store(true)
}

// Stop stops what Start started and waits for it. The API listener stays
// up while a newer config still uses it (see apiHandle).
func (a *App) Stop() error {
	a.stopLoops()
	if a.api != nil {
		a.api.release()
		a.api = nil
	}
	return nil
}

// stopLoops stops the health checks and the expiry loop and waits for
// them, so that the checks of an old and a new config never overlap.
func (a *App) stopLoops() {
	if a.run == nil {
		return
	}
	if a.run.stop != nil {
		close(a.run.stop)
		a.run.stop = nil
	}
	a.run.loops.Wait()
}

// Cleanup discards what Provision staged when this config was never
// committed (it failed to start, or was only validated).
func (a *App) Cleanup() error {
	if a.run != nil && !a.run.committed.Load() && !a.passive() {
		a.reg.Discard(a.generation)
	}
	if a.api != nil {
		// Claimed at provisioning by a config that never started (or
		// was only validated).
		a.api.release()
		a.api = nil
	}
	return nil
}

// sweepInterval is how often the counters of addresses that are no
// longer targets are swept (see registry.Sweep).
const sweepInterval = time.Minute

// expireLoop removes draining targets whose drain timeout passed (each
// removal is audited), and sweeps the per-address state of old targets.
func (a *App) expireLoop(stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if !a.run.committed.Load() {
				continue
			}
			a.expire(now)
			if now.Sub(lastSweep) >= sweepInterval {
				lastSweep = now
				if gone := a.reg.Sweep(); len(gone) > 0 {
					a.logger.Debug("forgot the counters of old target addresses", zap.Int("count", len(gone)))
				}
			}
		}
	}
}

// expire removes the targets whose drain timed out and audits each
// removal.
func (a *App) expire(now time.Time) {
	gone, err := a.reg.Expire(now)
	if err != nil {
		a.logger.Error("removing targets whose drain timed out", zap.Error(err))
		return
	}
	for _, g := range gone {
		a.audit.Info("control-plane change",
			zap.String("who", "sentinel"),
			zap.String("auth", "drain_timeout"),
			zap.String("method", "EXPIRE"),
			zap.String("upstream", g.Upstream),
			zap.String("target", g.Target.Address),
			zap.Time("drain_deadline", g.Target.DrainDeadline),
			zap.Any("before", g.Target),
		)
	}
}

// Interface guards
var (
	_ caddy.App           = (*App)(nil)
	_ caddy.Provisioner   = (*App)(nil)
	_ caddy.Validator     = (*App)(nil)
	_ caddy.CleanerUpper  = (*App)(nil)
	_ registry.Owner      = (*App)(nil)
	_ caddyevents.Handler = commitHandler{}
)
