// Package render turns the operator's resources into what the cluster
// and the replicas run: the sentinel.kdl of a SentinelProxy (with the
// SentinelUpstreams, SentinelAgents and SentinelRoutes selecting it),
// checked with the KDL adapter the replicas use, and the proxy's
// Kubernetes objects (objects.go).
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// Environment variables the rendered sentinel.kdl reads. A pod sets only
// ADMIN_API_TOKEN; the others have defaults (the pod's addresses and the
// in-cluster service account) and let the same file run outside a
// cluster (the operator's tests run replicas on one machine with them).
const (
	// EnvToken is the admin-api token.
	EnvToken = "ADMIN_API_TOKEN"
	// EnvAdminAddress overrides the admin-api's address.
	EnvAdminAddress = "SENTINEL_ADMIN_ADDRESS"
	// EnvOpsAddress overrides the ops listener's (metrics, probes) address.
	EnvOpsAddress = "SENTINEL_LISTEN_OPS"
	// EnvKubeconfig gives the fleet store a kubeconfig (default: in-cluster).
	EnvKubeconfig = "SENTINEL_KUBECONFIG"
	// EnvAdminTLSDir is the folder of the admin-api's tls.crt and tls.key
	// (default AdminTLSDir).
	EnvAdminTLSDir = "SENTINEL_ADMIN_TLS_DIR"
)

// ListenerEnv returns the variable overriding a listener's address.
func ListenerEnv(name string) string {
	return "SENTINEL_LISTEN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// AdminTLSDir is where the admin-api's TLS Secret is mounted.
const AdminTLSDir = "/etc/sentinel/admin-tls"

// TLSDir is where the TLS Secret of listener name is mounted.
func TLSDir(name string) string { return "/etc/sentinel/tls/" + name }

// ConfigKey is the ConfigMap key (and file name) of the configuration.
const ConfigKey = "sentinel.kdl"

// Rejected is a route, agent or upstream left out of the configuration
// because the adapter refused it.
type Rejected struct {
	// Kind is SentinelRoute, SentinelAgent or SentinelUpstream.
	Kind string
	// Name is the object's name.
	Name string
	// Err is the adapter's findings about it.
	Err error
}

// Config is a rendered sentinel.kdl.
type Config struct {
	// Text is the file.
	Text string
	// Revision is the first 16 hex digits of the text's SHA-256.
	Revision string
	// Routes, Agents and Upstreams are the names of the objects in it.
	Routes, Agents, Upstreams []string
	// Rejected are the objects the adapter refused (left out).
	Rejected []Rejected
}

// Revision returns the revision of a configuration text.
func Revision(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

// KDL renders the configuration of proxy p with the given upstreams,
// agents and routes (those selecting p, in any order: they are sorted by
// id). Each is checked with the KDL adapter; one it refuses is left out
// and listed in Rejected, so that one bad route does not stop the
// others. An error means the proxy's own part (spec.config) is invalid.
func KDL(p *v1alpha1.SentinelProxy, ups []v1alpha1.SentinelUpstream, agents []v1alpha1.SentinelAgent, routes []v1alpha1.SentinelRoute) (*Config, error) {
	base := proxyKDL(p)
	if err := check(base); err != nil {
		return nil, fmt.Errorf("SentinelProxy %s/%s: its configuration is invalid: %w", p.Namespace, p.Name, err)
	}
	slices.SortFunc(ups, func(a, b v1alpha1.SentinelUpstream) int { return strings.Compare(a.ID(), b.ID()) })
	slices.SortFunc(agents, func(a, b v1alpha1.SentinelAgent) int { return strings.Compare(a.ID(), b.ID()) })
	slices.SortFunc(routes, func(a, b v1alpha1.SentinelRoute) int { return strings.Compare(a.ID(), b.ID()) })
	type part struct {
		kind, name, text string
		into             *[]string
	}
	c := &Config{}
	var parts []part
	for i := range ups {
		parts = append(parts, part{"SentinelUpstream", ups[i].Name, upstreamKDL(&ups[i]), &c.Upstreams})
	}
	for i := range agents {
		parts = append(parts, part{"SentinelAgent", agents[i].Name, agentKDL(&agents[i]), &c.Agents})
	}
	for i := range routes {
		parts = append(parts, part{"SentinelRoute", routes[i].Name, routeKDL(&routes[i]), &c.Routes})
	}
	var all strings.Builder
	all.WriteString(base)
	for _, pt := range parts {
		all.WriteString(pt.text)
	}
	text := all.String()
	if check(text) != nil {
		// Find the culprits: add the parts one by one (upstreams, then
		// agents, then routes, which may name both).
		text = base
		for _, pt := range parts {
			if err := check(text + pt.text); err != nil {
				c.Rejected = append(c.Rejected, Rejected{Kind: pt.kind, Name: pt.name, Err: err})
				continue
			}
			text += pt.text
		}
	}
	for _, pt := range parts {
		if !slices.ContainsFunc(c.Rejected, func(r Rejected) bool { return r.Kind == pt.kind && r.Name == pt.name }) {
			*pt.into = append(*pt.into, pt.name)
		}
	}
	c.Text, c.Revision = text, Revision(text)
	return c, nil
}

// check adapts text as a replica would (the variables set, no includes).
func check(text string) error {
	env := func(name string) (string, bool) {
		if name == EnvToken {
			return "checked-by-the-operator", true
		}
		return "", false
	}
	_, _, err := kdladapter.Adapt(ConfigKey, []byte(text), env, noFiles{})
	return err
}

// noFiles refuses includes: the rendered configuration has none, and
// spec.config cannot read the operator's files.
type noFiles struct{}

func (noFiles) ReadFile(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "include", Path: name, Err: errors.New("a SentinelProxy's config cannot include files")}
}

func (noFiles) Glob(string) ([]string, error) { return nil, nil }

// proxyKDL renders the proxy's own part: listeners, the admin-api with
// the fleet store, metrics, probe routes, then spec.config.
func proxyKDL(p *v1alpha1.SentinelProxy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// sentinel.kdl of SentinelProxy %s/%s, rendered by sentinel-operator:\n// edit the SentinelProxy, SentinelRoutes and SentinelAgents instead.\n", p.Namespace, p.Name)
	b.WriteString("system {\n    caddy-admin \"off\"\n}\nlisteners {\n")
	for _, l := range p.Spec.Listeners {
		proto := l.Protocol
		if proto == "" {
			proto = "http"
		}
		fmt.Fprintf(&b, "    listener %s {\n        address %s\n        protocol %s\n", q(l.Name), envAddr(ListenerEnv(l.Name), l.Port), q(proto))
		if proto == "https" {
			fmt.Fprintf(&b, "        tls {\n            cert-file %s\n            key-file %s\n        }\n", q(TLSDir(l.Name)+"/tls.crt"), q(TLSDir(l.Name)+"/tls.key"))
		}
		b.WriteString("    }\n")
	}
	ops := envAddr(EnvOpsAddress, MetricsPort(p))
	fmt.Fprintf(&b, "    listener \"ops\" {\n        address %s\n        protocol \"http\"\n    }\n}\n", ops)
	fmt.Fprintf(&b, "admin-api {\n    address %s\n    auth {\n        token \"${%s}\"\n    }\n", envAddr(EnvAdminAddress, AdminPort(p)), EnvToken)
	dir := "${" + EnvAdminTLSDir + ":-" + AdminTLSDir + "}"
	fmt.Fprintf(&b, "    tls {\n        cert-file \"%s/tls.crt\"\n        key-file \"%s/tls.key\"\n    }\n", dir, dir)
	fmt.Fprintf(&b, "    fleet {\n        kubernetes {\n            name %s\n            namespace %s\n            kubeconfig \"${%s:-}\"\n        }\n    }\n}\n",
		q(p.Name+v1alpha1.StateSuffix), q(p.Namespace), EnvKubeconfig)
	fmt.Fprintf(&b, "observability {\n    metrics {\n        enabled #true\n        address %s\n        path \"/metrics\"\n    }\n}\n", ops)
	b.WriteString("routes {\n")
	for _, r := range [][2]string{{"health", "health"}, {"healthz", "health"}, {"ready", "ready"}} {
		fmt.Fprintf(&b, "    route %s {\n        priority \"critical\"\n        matches {\n            path %s\n        }\n        builtin-handler %s\n    }\n", q("sentinel-"+r[0]), q("/"+r[0]), q(r[1]))
	}
	b.WriteString("}\n")
	if c := strings.TrimSpace(p.Spec.Config); c != "" {
		b.WriteString("// spec.config\n")
		b.WriteString(c)
		b.WriteString("\n")
	}
	return b.String()
}

// MetricsPort returns the proxy's metrics and probes port.
func MetricsPort(p *v1alpha1.SentinelProxy) int32 {
	if p.Spec.MetricsPort != 0 {
		return p.Spec.MetricsPort
	}
	return 9090
}

// AdminPort returns the proxy's control API port.
func AdminPort(p *v1alpha1.SentinelProxy) int32 {
	if p.Spec.AdminAPI.Port != 0 {
		return p.Spec.AdminAPI.Port
	}
	return 9901
}

// envAddr is an address the variable env may override.
func envAddr(env string, port int32) string {
	return `"${` + env + ":-0.0.0.0:" + strconv.Itoa(int(port)) + `}"`
}

// upstreamKDL declares a SentinelUpstream's upstream so that routes can
// name it. Its targets come from the shared state (the operator writes
// them, "replace"); the one declared here is the fallback used when the
// state holds none: a static target, the Service's DNS name with a port
// number, else a dead address.
func upstreamKDL(u *v1alpha1.SentinelUpstream) string {
	fallback := "127.0.0.1:1"
	switch s := u.Spec.Service; {
	case len(u.Spec.Targets) > 0:
		fallback = u.Spec.Targets[0].Address
	case s != nil && s.Port != nil:
		fallback = net.JoinHostPort(s.Name+"."+u.Namespace+".svc", strconv.Itoa(int(*s.Port)))
	}
	return fmt.Sprintf("// SentinelUpstream %s\nupstreams {\n    upstream %s {\n        target %s\n    }\n}\n", u.Name, q(u.ID()), q(fallback))
}

// agentKDL renders an agent block and its filter (same id, type agent).
func agentKDL(a *v1alpha1.SentinelAgent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// SentinelAgent %s\nagents {\n    agent %s {\n", a.Name, q(a.ID()))
	s := a.Spec
	if s.Type != "" {
		fmt.Fprintf(&b, "        type %s\n", q(s.Type))
	}
	if s.UnixSocket != "" {
		fmt.Fprintf(&b, "        unix-socket %s\n", q(s.UnixSocket))
	}
	if s.GRPC != "" {
		fmt.Fprintf(&b, "        grpc %s\n", q(s.GRPC))
	}
	if len(s.Events) > 0 {
		b.WriteString("        events")
		for _, e := range s.Events {
			if e == "request_complete" {
				e = "log"
			}
			b.WriteString(" " + q(e))
		}
		b.WriteString("\n")
	}
	if s.TimeoutMilliseconds != nil {
		fmt.Fprintf(&b, "        timeout-ms %d\n", *s.TimeoutMilliseconds)
	}
	if s.FailureMode != "" {
		fmt.Fprintf(&b, "        failure-mode %s\n", q(s.FailureMode))
	}
	if s.MaxRequestBodyBytes != nil {
		fmt.Fprintf(&b, "        max-request-body-bytes %d\n", *s.MaxRequestBodyBytes)
	}
	fmt.Fprintf(&b, "    }\n}\nfilters {\n    filter %s {\n        type \"agent\"\n        agent %s\n    }\n}\n", q(a.ID()), q(a.ID()))
	return b.String()
}

// routeKDL renders a route block.
func routeKDL(r *v1alpha1.SentinelRoute) string {
	var b strings.Builder
	s := r.Spec
	fmt.Fprintf(&b, "// SentinelRoute %s\nroutes {\n    route %s {\n", r.Name, q(r.ID()))
	if s.Priority != nil {
		fmt.Fprintf(&b, "        priority %d\n", *s.Priority)
	}
	m := s.Matches
	b.WriteString("        matches {\n")
	if m.PathPrefix != "" {
		fmt.Fprintf(&b, "            path-prefix %s\n", q(m.PathPrefix))
	}
	if m.Path != "" {
		fmt.Fprintf(&b, "            path %s\n", q(m.Path))
	}
	if m.PathPrefix == "" && m.Path == "" {
		b.WriteString("            path-prefix \"/\"\n")
	}
	if len(m.Hosts) > 0 {
		fmt.Fprintf(&b, "            host %s\n", qs(m.Hosts))
	}
	if len(m.Methods) > 0 {
		fmt.Fprintf(&b, "            method %s\n", qs(m.Methods))
	}
	for _, h := range m.Headers {
		if h.Value != nil {
			fmt.Fprintf(&b, "            header %s %s\n", q(h.Name), q(*h.Value))
		} else {
			fmt.Fprintf(&b, "            header %s\n", q(h.Name))
		}
	}
	b.WriteString("        }\n")
	if s.Upstream != "" {
		fmt.Fprintf(&b, "        upstream %s\n", q(s.Upstream))
	}
	if s.BuiltinHandler != "" {
		fmt.Fprintf(&b, "        builtin-handler %s\n", q(s.BuiltinHandler))
	}
	if f := append(slices.Clone(s.Agents), s.Filters...); len(f) > 0 {
		fmt.Fprintf(&b, "        filters %s\n", qs(f))
	}
	if s.TimeoutSeconds != nil {
		fmt.Fprintf(&b, "        policies {\n            timeout-secs %d\n        }\n", *s.TimeoutSeconds)
	}
	b.WriteString("    }\n}\n")
	return b.String()
}

// qs quotes strings, separated by spaces.
func qs(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return strings.Join(out, " ")
}

// q quotes s as a KDL string. "${" is escaped ("$${"): a value of a
// resource is never an environment variable of the replica.
func q(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '$' && strings.HasPrefix(s[i:], "${"):
			b.WriteString("$$")
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u{%x}`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
