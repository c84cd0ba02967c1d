package kdladapter

import (
	"slices"
	"sort"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/registry"
)

// An upstream's circuit-breaker is Caddy's passive health checking, whose
// failure counts Caddy keeps per target address for the whole process
// (reverseproxy's hosts), not per upstream: when upstreams of two
// namespaces (or a namespace and the global scope) both have a breaker
// and share a target address, one tenant's failures open the other's
// breaker. Agents' breakers are per agent id, so per namespace. Until
// the breaker state is the upstream's own, the adapter warns about such
// shared addresses (docs/multi-tenancy.md#circuit-breakers).

// breakerUse is an upstream with a circuit breaker, at the breaker's
// place.
type breakerUse struct {
	id  string
	pos kdl.Position
}

// noteBreaker records the targets of an upstream with a circuit breaker
// (only when the config has namespaces).
func (a *adapter) noteBreaker(id string, pos kdl.Position, targets []registry.TargetSpec) {
	t := a.tenancy
	if t == nil {
		return
	}
	if t.breakers == nil {
		t.breakers = map[string][]breakerUse{}
	}
	for _, tg := range targets {
		uses := t.breakers[tg.Address]
		if !slices.ContainsFunc(uses, func(u breakerUse) bool { return u.id == id }) {
			t.breakers[tg.Address] = append(uses, breakerUse{id, pos})
		}
	}
}

// warnSharedBreakers warns about each upstream with a breaker whose
// target is also the target of another namespace's upstream with one.
func (a *adapter) warnSharedBreakers() {
	t := a.tenancy
	if t == nil || len(t.breakers) == 0 {
		return
	}
	shared := map[string]map[string]bool{} // upstream → the other scopes' upstreams
	pos := map[string]kdl.Position{}
	addrs := map[string][]string{}
	for addr, uses := range t.breakers {
		for _, u := range uses {
			for _, o := range uses {
				if NamespaceOf(o.id) == NamespaceOf(u.id) {
					continue
				}
				if shared[u.id] == nil {
					shared[u.id] = map[string]bool{}
				}
				if !shared[u.id][o.id] {
					shared[u.id][o.id] = true
				}
				pos[u.id] = u.pos
				if !slices.Contains(addrs[u.id], addr) {
					addrs[u.id] = append(addrs[u.id], addr)
				}
			}
		}
	}
	for _, id := range sortedKeys(shared) {
		others := sortedKeys(shared[id])
		sort.Strings(addrs[id])
		a.d.warnf(pos[id], "upstreams.upstream.circuit-breaker",
			"upstream %q shares target %s with %s, also with a circuit breaker: breaker state is per target address, so failures through one open the other's; give each namespace its own target address to keep them apart",
			id, strings.Join(addrs[id], ", "), quoteAll(others))
	}
}

// quoteAll quotes ids and joins them with ", ".
func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = quote(id)
	}
	return strings.Join(q, ", ")
}
