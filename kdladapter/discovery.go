package kdladapter

import (
	"encoding/json"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/discovery"
	"github.com/sentinel-proxy/sentinel/registry"
)

// Service discovery: `discovery "<kind>" { … }` of an upstream, mapped
// onto the sentinel.discovery module of that kind (modules/discovery),
// which the `sentinel` app runs for the upstream (its UpstreamConfig's
// discovery). The settings depend on the kind: discoveryKinds declares
// them, and discoveryKey (in the upstream's schema) is open.

// discoveryKey declares `discovery "<kind>" { … }` in the upstream's
// schema; its settings are checked against discoveryKinds.
var discoveryKey = open(h("discovery", "targets found by a `sentinel.discovery` module (`static`, `dns`, `dns-srv`, `file`, `consul`, `kubernetes`; see the discovery table and docs/discovery.md); with it, the upstream may declare no target"))

// discoveryKind is one kind: its settings (Key, with a Map that returns
// the module's struct) and its module name.
type discoveryKind struct {
	key    *Key
	module string
	json   func(v any) json.RawMessage
}

// refreshNote is the note of refresh-interval.
const refreshNote = "seconds between lookups (default 30)"

// discoveryKinds declares the settings of each kind. Built once.
var discoveryKinds = map[string]discoveryKind{
	"static": newDiscoveryKind("static", typedBlock(h("static", "fixed backends (the same as declared targets)"),
		fieldOf("backends", "`host:port` strings, each a target of weight 1", (*adapter).discoveryBackends,
			func(s *discovery.Static) *[]registry.TargetSpec { return &s.Targets }),
	)),
	"dns": newDiscoveryKind("dns", typedBlock(h("dns", "A and AAAA records of a name"),
		stringField("hostname", "required: the name to resolve", func(d *discovery.DNS) *string { return &d.Hostname }),
		intField("port", "required: the port of every target", 1, 65535, func(d *discovery.DNS) *int { return &d.Port }),
		secondsField("refresh-interval", refreshNote+"; sooner when the records' TTL ends sooner", func(d *discovery.DNS) *caddy.Duration { return &d.RefreshInterval }),
		stringsField("resolvers", "DNS servers to ask (`host` or `host:port`); default: /etc/resolv.conf's", func(d *discovery.DNS) *[]string { return &d.Resolvers }).extension(),
		secondsField("timeout-secs", "timeout of one query (default 5)", func(d *discovery.DNS) *caddy.Duration { return &d.Timeout }).extension(),
	)),
	"dns-srv": newDiscoveryKind("dns_srv", typedBlock(h("dns-srv", "SRV records of a service name (ports and weights from the records)"),
		stringField("service", "required: the SRV name, e.g. `_http._tcp.api.internal`", func(d *discovery.DNSSRV) *string { return &d.Service }),
		secondsField("refresh-interval", refreshNote+"; sooner when the records' TTL ends sooner", func(d *discovery.DNSSRV) *caddy.Duration { return &d.RefreshInterval }),
		stringsField("resolvers", "DNS servers to ask; default: /etc/resolv.conf's", func(d *discovery.DNSSRV) *[]string { return &d.Resolvers }).extension(),
		secondsField("timeout-secs", "timeout of one query (default 5)", func(d *discovery.DNSSRV) *caddy.Duration { return &d.Timeout }).extension(),
	)),
	"file": newDiscoveryKind("file", typedBlock(h("file", "a file of `host:port [weight=N]` lines, watched and read again every watch interval"),
		stringField("path", "required: the targets file", func(f *discovery.File) *string { return &f.Path }),
		secondsField("watch-interval", "seconds between reads (default 5)", func(f *discovery.File) *caddy.Duration { return &f.WatchInterval }),
	)),
	"consul": newDiscoveryKind("consul", typedBlock(h("consul", "a service of Consul's catalog (health API, blocking queries)"),
		stringField("address", "Consul's URL (default `http://127.0.0.1:8500`)", func(c *discovery.Consul) *string { return &c.Address }),
		stringField("service", "required: the service name", func(c *discovery.Consul) *string { return &c.Service }),
		stringField("datacenter", "", func(c *discovery.Consul) *string { return &c.Datacenter }),
		optBoolField("only-passing", "default #true: only instances whose checks pass", func(c *discovery.Consul) **bool { return &c.OnlyPassing }),
		stringsField("tag", "instances having every tag given", func(c *discovery.Consul) *[]string { return &c.Tags }),
		stringField("token", "ACL token; write `\"{env.CONSUL_TOKEN}\"` to keep it out of the Caddy JSON", func(c *discovery.Consul) *string { return &c.Token }).extension(),
		secondsField("refresh-interval", "longest wait of a blocking query, in seconds (default 30)", func(c *discovery.Consul) *caddy.Duration { return &c.RefreshInterval }),
	)),
	"kubernetes": newDiscoveryKind("kubernetes", typedBlock(h("kubernetes", "the ready endpoints of a Service (EndpointSlices, watched)"),
		stringField("namespace", "default: the kubeconfig's, or the pod's", func(k *discovery.Kubernetes) *string { return &k.Namespace }),
		stringField("service", "required: the Service name", func(k *discovery.Kubernetes) *string { return &k.Service }),
		stringField("port-name", "the Service port to use (required when it has several)", func(k *discovery.Kubernetes) *string { return &k.PortName }),
		stringField("kubeconfig", "default: in-cluster (service account)", func(k *discovery.Kubernetes) *string { return &k.Kubeconfig }),
		secondsField("refresh-interval", "seconds between two full lists (default 30); changes come through the watch", func(k *discovery.Kubernetes) *caddy.Duration { return &k.RefreshInterval }),
	)),
}

// newDiscoveryKind declares a kind mapped onto the module of the
// sentinel.discovery namespace named module, whose struct is T.
func newDiscoveryKind(module string, k *Key) discoveryKind {
	return discoveryKind{key: k, module: module, json: func(v any) json.RawMessage {
		raw, err := json.Marshal(typedObj(v, "kind", module))
		if err != nil {
			panic("kdladapter: " + err.Error())
		}
		return raw
	}}
}

// discoveryKindNames are the kinds, sorted.
func discoveryKindNames() []string {
	return []string{"consul", "dns", "dns-srv", "file", "kubernetes", "static"}
}

// discovery maps an upstream's discovery block (nil without one).
func (a *adapter) discovery(id string, n *kdl.Node) json.RawMessage {
	if n == nil {
		return nil
	}
	s, ok := a.str(n)
	if !ok {
		return nil
	}
	name := strings.ToLower(s)
	if name == "dns_srv" {
		name = "dns-srv"
	}
	kind, known := discoveryKinds[name]
	if !known {
		a.d.errorf(n.Args[0].Pos, "upstream %q: unknown discovery %q%s", id, s, suggest(name, discoveryKindNames()))
		return nil
	}
	errs := len(a.d.errs)
	v := a.mapBlock(n, kind.key, "upstreams.upstream.discovery."+name)
	for _, req := range requiredDiscovery[name] {
		if setting(n, req) == nil {
			a.d.errorf(n.Pos, "upstream %q: discovery %q needs %s", id, name, req)
		}
	}
	if len(a.d.errs) > errs {
		return nil
	}
	return kind.json(v)
}

// requiredDiscovery are the settings each kind needs.
var requiredDiscovery = map[string][]string{
	"static":     {"backends"},
	"dns":        {"hostname", "port"},
	"dns-srv":    {"service"},
	"file":       {"path"},
	"consul":     {"service"},
	"kubernetes": {"service"},
}

// discoveryBackends reads static's backends: host:port strings, each
// checked at its position with the registry's rules.
func (a *adapter) discoveryBackends(n *kdl.Node) ([]registry.TargetSpec, bool) {
	var ts []registry.TargetSpec
	ok := true
	for _, v := range n.Args {
		if v.Kind != kdl.KindString {
			a.d.errorf(v.Pos, "backends takes host:port strings, not %s %s", v.Kind, v)
			ok = false
			continue
		}
		if err := registry.ValidateAddress(v.Str); err != nil {
			a.d.errorf(v.Pos, "backends: %s", strings.TrimSuffix(err.Error(), ": "+registry.ErrInvalid.Error()))
			ok = false
			continue
		}
		ts = append(ts, registry.TargetSpec{Address: v.Str})
	}
	for _, c := range n.Children {
		// The block form: backends { backend "host:port" } is not the
		// original's; say what is.
		a.d.errorf(c.Pos, "backends takes its addresses as arguments: backends \"10.0.0.1:80\" \"10.0.0.2:80\"")
		ok = false
	}
	if len(n.Args) == 0 && len(n.Children) == 0 {
		a.d.errorf(n.Pos, "backends needs at least one host:port")
		ok = false
	}
	return ts, ok
}
