package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// stateVersion is the format version of the state file.
const stateVersion = 1

// state is what the state file holds: the API's changes.
type state struct {
	Version   int             `json:"version"`
	Upstreams []stateUpstream `json:"upstreams"`
	Disabled  []string        `json:"disabled_routes,omitempty"`
}

type stateUpstream struct {
	ID           string   `json:"id"`
	Origin       Origin   `json:"origin"`
	Override     []Target `json:"override"`
	OverrideBase []Target `json:"override_base,omitempty"`
}

// Snapshot returns the API's changes as the state file's JSON.
func (r *Registry) Snapshot() ([]byte, error) {
	r.mu.Lock()
	s := state{Version: stateVersion}
	for _, e := range r.upstreams {
		if e.override == nil {
			continue
		}
		s.Upstreams = append(s.Upstreams, stateUpstream{ID: e.id, Origin: e.origin, Override: e.override, OverrideBase: e.overrideBase})
	}
	for id, e := range r.routes {
		if !e.flag.Enabled() {
			s.Disabled = append(s.Disabled, id)
		}
	}
	r.mu.Unlock()
	sortState(&s)
	return json.MarshalIndent(s, "", "  ")
}

func sortState(s *state) {
	sort.Slice(s.Upstreams, func(i, j int) bool { return s.Upstreams[i].ID < s.Upstreams[j].ID })
	sort.Strings(s.Disabled)
}

// Restore applies a state file's JSON: API upstreams are created, API
// changes of config upstreams are applied (merged with the current
// config), disabled routes stay disabled. Call it after the first
// Reconcile of the process.
func (r *Registry) Restore(data []byte) error {
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if s.Version != stateVersion {
		return fmt.Errorf("state file: version %d, expected %d", s.Version, stateVersion)
	}
	r.mu.Lock()
	for _, su := range s.Upstreams {
		e, ok := r.upstreams[su.ID]
		if !ok {
			if su.Origin != OriginAPI {
				continue // left the config
			}
			e = &entry{id: su.ID, origin: OriginAPI, health: map[string]bool{}}
			r.upstreams[su.ID] = e
		}
		e.override, e.overrideBase = su.Override, su.OverrideBase
		e.effective = merge(e.base, e.override, e.overrideBase)
		r.bump(e)
	}
	for _, id := range s.Disabled {
		if e, ok := r.routes[id]; ok {
			e.flag.disabled.Store(true)
		}
	}
	r.rebuild()
	r.mu.Unlock()
	return nil
}

// WriteFile writes data to path atomically: a temporary file in the same
// folder, fsync, rename, fsync of the folder.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
