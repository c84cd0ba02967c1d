package routeguard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Loading a route's reverse_proxy. Caddy's reverse_proxy loads each of its
// modules (transport, selection policy, upstream source, retry matchers)
// through ctx.LoadModule: the field's struct tag parsed, the module's JSON
// decoded into a map and encoded again to read its name, then decoded
// into the module. For 10,000 routes that was most of the proxy's
// provisioning (issue 13.8), although the routes of a generated config
// have the same transport and the same retry matchers.
//
// A guard taking its handlers from the sentinel_routes app loads a
// reverse_proxy as proxyLoaderID instead: the same Caddy handler
// (reverseproxy.Handler, decoded from the same JSON, provisioned by its
// own Provision), whose modules are loaded before by name (the scan of
// inline.go) and, for the transport and the retry matchers, shared by the
// config's proxies with the same JSON (as reverse_proxy leaves a module
// it finds already set). Only modules that hold nothing per handler are
// shared: shareableTransports, and the retry matchers (method and
// expression matchers, which read the request only).
//
// The handler runs as the proxy's ancestor while it is provisioned, so
// that ctx.Logger() names it http.handlers.reverse_proxy, as Caddy's
// loading would (the loader's own ID is never a logger's name).

// proxyLoaderID is the module that loads a reverse_proxy for a guard.
const proxyLoaderID = "sentinel.route.reverse_proxy"

// proxyHandler is the handler name whose JSON the guard loads as
// proxyLoaderID.
const proxyHandler = "reverse_proxy"

func init() {
	caddy.RegisterModule(proxyLoader{})
}

// proxyLoader registers proxyLoaderID. It is internal: the KDL adapter
// never writes it, and a config naming it is a reverse_proxy.
type proxyLoader struct{}

// CaddyModule returns the Caddy module information.
func (proxyLoader) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  proxyLoaderID,
		New: func() caddy.Module { return new(proxy) },
	}
}

// proxy is Caddy's reverse_proxy, loaded by proxyLoaderID.
type proxy struct {
	reverseproxy.Handler
	// provisioning: the handler's own Provision ran (Cleanup is for it
	// only then).
	provisioning bool
}

// CaddyModule returns reverse_proxy's module information: what names the
// proxy's logger (ctx.Logger), as for a reverse_proxy Caddy loads.
func (*proxy) CaddyModule() caddy.ModuleInfo {
	return reverseproxy.Handler{}.CaddyModule()
}

// shareableTransports are the transports one instance of which may serve
// the proxies of a config with the same transport JSON: they hold nothing
// per handler (Sentinel's transport already shares its http transport
// between equal settings), and are not reverseproxy.BufferedTransport
// (whose buffer sizes reverse_proxy takes only from a transport it loads
// itself).
var shareableTransports = map[string]bool{
	"sentinel": true,
}

// proxyShares are the modules the proxies of a config share, by JSON.
type proxyShares struct {
	transports map[string]http.RoundTripper
	retry      map[string]caddyhttp.MatcherSets
}

// proxySharesKey is the caddy.Context value of a guard's proxyShares.
type proxySharesKey struct{}

// Provision loads the proxy's modules (sharing what proxyShares holds),
// then provisions the handler.
func (p *proxy) Provision(ctx caddy.Context) error {
	h := &p.Handler
	shares, _ := ctx.Value(proxySharesKey{}).(*proxyShares)
	if shares == nil {
		p.provisioning = true
		return h.Provision(ctx)
	}
	if h.TransportRaw != nil {
		name, rest, err := cutModuleName(h.TransportRaw, "protocol")
		if err != nil {
			return fmt.Errorf("loading transport: %v", err)
		}
		if shareableTransports[name] {
			t, ok := shares.transports[string(h.TransportRaw)]
			if !ok {
				if t, err = loadTransport(ctx, name, rest); err != nil {
					return err
				}
				shares.transports[string(h.TransportRaw)] = t
			}
			h.Transport, h.TransportRaw = t, nil
		}
	}
	if lb := h.LoadBalancing; lb != nil {
		if lb.SelectionPolicyRaw != nil {
			m, err := loadNamed(ctx, lb.SelectionPolicyRaw, "policy", "http.reverse_proxy.selection_policies")
			if err != nil {
				return fmt.Errorf("loading load balancing selection policy: %s", err)
			}
			sel, ok := m.(reverseproxy.Selector)
			if !ok {
				return fmt.Errorf("loading load balancing selection policy: %T is not a selection policy", m)
			}
			lb.SelectionPolicy, lb.SelectionPolicyRaw = sel, nil
		}
		if len(lb.RetryMatchRaw) > 0 {
			key := matcherSetsKey(lb.RetryMatchRaw)
			ms, ok := shares.retry[key]
			if !ok {
				sets, err := ctx.LoadModule(lb, "RetryMatchRaw")
				if err != nil {
					return err
				}
				if err := ms.FromInterface(sets); err != nil {
					return err
				}
				shares.retry[key] = ms
			}
			// reverse_proxy appends the matchers it loads (none now) to
			// these.
			lb.RetryMatch, lb.RetryMatchRaw = ms, nil
		}
	}
	if h.DynamicUpstreamsRaw != nil {
		m, err := loadNamed(ctx, h.DynamicUpstreamsRaw, "source", "http.reverse_proxy.upstreams")
		if err != nil {
			return fmt.Errorf("loading upstream source module: %v", err)
		}
		src, ok := m.(reverseproxy.UpstreamSource)
		if !ok {
			return fmt.Errorf("loading upstream source module: %T is not an upstream source", m)
		}
		h.DynamicUpstreams, h.DynamicUpstreamsRaw = src, nil
	}
	p.provisioning = true
	return h.Provision(ctx)
}

// Cleanup cleans up the handler, once its Provision ran (Caddy cleans up
// a module whose Provision failed: the proxy's may fail loading a module
// before the handler's own).
func (p *proxy) Cleanup() error {
	if !p.provisioning {
		return nil
	}
	return p.Handler.Cleanup()
}

// loadTransport loads a shared transport.
func loadTransport(ctx caddy.Context, name string, rest json.RawMessage) (http.RoundTripper, error) {
	m, err := ctx.LoadModuleByID("http.reverse_proxy.transport."+name, rest)
	if err != nil {
		return nil, fmt.Errorf("loading transport: loading module '%s': %v", name, err)
	}
	t, ok := m.(http.RoundTripper)
	if !ok {
		return nil, fmt.Errorf("loading transport: module '%s' is not a transport", name)
	}
	return t, nil
}

// loadNamed loads the module of raw, named by its member key, in
// namespace, as ctx.LoadModule does with an inline key (errors worded
// alike).
func loadNamed(ctx caddy.Context, raw json.RawMessage, key, namespace string) (any, error) {
	name, rest, err := cutModuleName(raw, key)
	if err != nil {
		return nil, err
	}
	m, err := ctx.LoadModuleByID(namespace+"."+name, rest)
	if err != nil {
		return nil, fmt.Errorf("loading module '%s': %v", name, err)
	}
	return m, nil
}

// matcherSetsKey is a key equal for equal matcher sets (their matchers'
// names and JSON, whatever the order of the names).
func matcherSetsKey(sets caddyhttp.RawMatcherSets) string {
	var b strings.Builder
	for _, set := range sets {
		names := make([]string, 0, len(set))
		for name := range set {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			b.WriteString(name)
			b.WriteByte(0)
			b.Write(set[name])
			b.WriteByte(1)
		}
		b.WriteByte(2)
	}
	return b.String()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*proxy)(nil)
	_ caddy.CleanerUpper          = (*proxy)(nil)
	_ caddyhttp.MiddlewareHandler = (*proxy)(nil)
)
