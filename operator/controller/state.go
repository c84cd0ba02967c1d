package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel/registry"
)

// stateVersion is the registry's state format version.
const stateVersion = 1

// state is the registry's shared state as the operator edits it: the
// same JSON as a state file (registry/persist.go). The operator only
// replaces or removes the entries of the upstreams it manages; the rest
// (other upstreams' API changes, route switches) is kept as it is.
type state struct {
	Version   int             `json:"version"`
	Upstreams []stateUpstream `json:"upstreams"`
	Disabled  []string        `json:"disabled_routes,omitempty"`
}

// stateUpstream is one upstream's entry.
type stateUpstream struct {
	ID           string            `json:"id"`
	Origin       registry.Origin   `json:"origin"`
	Override     []registry.Target `json:"override"`
	OverrideBase []registry.Target `json:"override_base,omitempty"`
	Replace      bool              `json:"replace,omitempty"`
	Version      uint64            `json:"version,omitempty"`
}

// parseState reads a state (an empty one for nil or empty data).
func parseState(data []byte) (*state, error) {
	s := &state{Version: stateVersion}
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("the proxy's state is not a Sentinel state: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("the proxy's state has format version %d, this operator writes %d", s.Version, stateVersion)
	}
	return s, nil
}

// encode writes the state as the registry does.
func (s *state) encode() ([]byte, error) {
	if s.Upstreams == nil {
		s.Upstreams = []stateUpstream{}
	}
	slices.SortFunc(s.Upstreams, func(a, b stateUpstream) int { return strings.Compare(a.ID, b.ID) })
	return json.MarshalIndent(s, "", "  ")
}

// set makes targets the whole target list of upstream id; it reports
// whether the state changed. The entry gets a version above every
// version in the state (and the clock's milliseconds), so that the
// upstream's ETag is the same on every replica and new.
func (s *state) set(id string, targets []registry.Target, now time.Time) bool {
	i := slices.IndexFunc(s.Upstreams, func(u stateUpstream) bool { return u.ID == id })
	if i >= 0 && sameTargets(s.Upstreams[i].Override, targets) {
		return false
	}
	e := stateUpstream{ID: id, Origin: registry.OriginAPI, Override: targets, Replace: true, Version: s.nextVersion(now)}
	if i >= 0 {
		e.Origin = s.Upstreams[i].Origin
		s.Upstreams[i] = e
	} else {
		s.Upstreams = append(s.Upstreams, e)
	}
	return true
}

// remove takes upstream id out of the state; it reports whether it was
// there. The proxy then routes it by its configuration again (or drops
// it, for an upstream the configuration does not declare).
func (s *state) remove(id string) bool {
	n := len(s.Upstreams)
	s.Upstreams = slices.DeleteFunc(s.Upstreams, func(u stateUpstream) bool { return u.ID == id })
	return len(s.Upstreams) != n
}

// nextVersion returns a version above every saved one.
func (s *state) nextVersion(now time.Time) uint64 {
	v := uint64(max(now.UnixMilli(), 0))
	for _, u := range s.Upstreams {
		v = max(v, u.Version+1)
	}
	return v
}

// sameTargets compares what routing depends on: addresses, weights and
// states, in order.
func sameTargets(a, b []registry.Target) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Target) bool {
		return x.Address == y.Address && x.Weight == y.Weight && x.State == y.State
	})
}
