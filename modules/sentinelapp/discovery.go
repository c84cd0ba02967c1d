package sentinelapp

import (
	"context"

	"github.com/sentinel-proxy/sentinel/registry"
)

// startDiscovery runs the discoverers of the config until stop. They
// start with the config (so that their first set is there when it is
// committed); what they publish reaches the registry once the config is
// committed (see goLive), and never after the config stopped: Stop waits
// for them.
func (a *App) startDiscovery(stop <-chan struct{}) {
	if len(a.discoverers) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.run.loops.Add(1)
	go func() {
		defer a.run.loops.Done()
		<-stop
		cancel()
	}()
	for id, d := range a.discoverers {
		a.run.loops.Add(1)
		go func() {
			defer a.run.loops.Done()
			d.Discover(ctx, id, func(ts []registry.TargetSpec) { a.publish(id, ts) })
		}()
	}
}

// publish records the set a discoverer found, and gives it to the
// registry once the config is the running one.
func (a *App) publish(id string, ts []registry.TargetSpec) {
	a.run.foundMu.Lock()
	defer a.run.foundMu.Unlock()
	if a.run.found == nil {
		a.run.found = map[string][]registry.TargetSpec{}
	}
	a.run.found[id] = ts
	if a.run.live {
		a.reg.SetDiscovered(a.generation, id, ts)
	}
}

// goLive gives the registry the sets found before the commit, and lets
// the later ones through. Called at the commit, after the reconcile.
func (a *App) goLive() {
	a.run.foundMu.Lock()
	defer a.run.foundMu.Unlock()
	a.run.live = true
	for id, ts := range a.run.found {
		a.reg.SetDiscovered(a.generation, id, ts)
	}
}
