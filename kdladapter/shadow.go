package kdladapter

import (
	"math"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/shadow"
)

// shadowKey declares a route's `shadow { }` block (traffic mirroring) and
// its mapping onto the sentinel_shadow handler's shadow.Handler. It is
// built once and not changed after.
var shadowKey = shadowKeys()

func shadowKeys() *Key {
	return typedBlock(h("shadow", "`sentinel_shadow` handler: a fire-and-forget copy of a sample of the route's requests to another upstream, through that upstream's proxy settings; the client's response never waits for it"),
		stringField("upstream", "the shadow upstream, from `upstreams { }` (required)", func(s *shadow.Handler) *string { return &s.Upstream }),
		fieldOf("percentage", "0 to 100 (default 100)", (*adapter).percentage, func(s *shadow.Handler) **float64 { return &s.Percentage }),
		fieldOf("sample-header", "`\"Name\" \"value\"`: only requests carrying that header value are shadowed", (*adapter).sampleHeader,
			func(s *shadow.Handler) **shadow.SampleHeader { return &s.SampleHeader }),
		fieldOf("timeout-ms", "bound of each copy (default 5000)", (*adapter).positiveMillis, func(s *shadow.Handler) *caddy.Duration { return &s.Timeout }),
		boolField("buffer-body", "`#true`: the body is copied too (read before the request goes on); without it copies have no body", func(s *shadow.Handler) *bool { return &s.BufferBody }),
		fieldOf("max-body-bytes", "a larger body is not copied (counted as dropped); the route's upstream still gets all of it (default 1048576)", (*adapter).positiveSize,
			func(s *shadow.Handler) *int64 { return &s.MaxBodyBytes }),
		intField("max-in-flight", "the most copies of the route in flight; more are dropped and counted (default 100)", 1, 1<<20,
			func(s *shadow.Handler) *int { return &s.MaxInFlight }).extension(),
	)
}

// shadowHandler maps the route's shadow block onto a sentinel_shadow
// handler, or returns nil (no block, or a mistake reported).
func (a *adapter) shadowHandler(routeID string, r *kdl.Node) obj {
	n := setting(r, "shadow")
	if n == nil {
		return nil
	}
	if setting(r, "upstream") == nil {
		a.d.warnf(n.Pos, "routes.route.shadow", "route %q: shadow applies only to routes with an upstream; it is ignored", routeID)
		return nil
	}
	s := shadowKey.Map(a, n).(*shadow.Handler)
	un := setting(n, "upstream")
	if un == nil {
		a.d.errorf(n.Pos, "route %q: shadow needs upstream \"<id>\", the upstream that gets the copies", routeID)
		return nil
	}
	if s.Upstream == "" {
		return nil // not a string: reported
	}
	u := a.upstreams[s.Upstream]
	if u == nil {
		a.d.errorf(un.Args[0].Pos, "route %q: shadow upstream %q is not defined in upstreams { }%s", routeID, s.Upstream, suggest(s.Upstream, a.upstreamIDs()))
		return nil
	}
	s.Route = routeID
	out := typedObj(s, "handler", "sentinel_shadow")
	proxy := a.reverseProxy(u, nil, proxyOverrides{})
	proxy["headers"] = obj(shadow.HostHeaders())
	out["proxy"] = proxy
	return out
}

// percentage reads a number from 0 to 100.
func (a *adapter) percentage(n *kdl.Node) (*float64, bool) {
	f, ok := a.number(n)
	if !ok {
		return nil, false
	}
	if f < 0 || f > 100 || math.IsNaN(f) {
		a.d.errorf(n.Args[0].Pos, "%s must be between 0 and 100, not %v", n.Name, n.Args[0])
		return nil, false
	}
	return &f, true
}

// sampleHeader reads a header name and value.
func (a *adapter) sampleHeader(n *kdl.Node) (*shadow.SampleHeader, bool) {
	if len(n.Args) != 2 {
		a.d.errorf(n.Pos, "%s takes a header name and a value, e.g. sample-header \"X-Shadow\" \"1\"", n.Name)
		return nil, false
	}
	vals := a.strs(n)
	if len(vals) != 2 {
		return nil, false // reported
	}
	if vals[0] == "" {
		a.d.errorf(n.Args[0].Pos, "%s: the header name is empty", n.Name)
		return nil, false
	}
	return &shadow.SampleHeader{Name: vals[0], Value: vals[1]}, true
}

// positiveMillis reads a number of milliseconds above 0.
func (a *adapter) positiveMillis(n *kdl.Node) (caddy.Duration, bool) {
	if i, ok := a.integer(n, 1, 1<<40); ok {
		return caddy.Duration(i) * caddy.Duration(1e6), true
	}
	return 0, false
}

// positiveSize reads a size (bytes, or "10MB") above 0.
func (a *adapter) positiveSize(n *kdl.Node) (int64, bool) {
	sz, ok := a.byteSize(n)
	if ok && sz < 1 {
		a.d.errorf(n.Args[0].Pos, "%s must be at least 1 byte", n.Name)
		return 0, false
	}
	return sz, ok
}
