package kdladapter

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/builtin"
	"github.com/sentinel-proxy/sentinel/modules/framing"
	"github.com/sentinel-proxy/sentinel/modules/handoff"
)

// listenerKey declares `listener "id" { … }`: a Caddy server
// (caddyhttp.Server). The settings that depend on each other (protocol,
// tls, allow-0rtt) or whose messages name the listener (address,
// trusted-proxies) are read by mapListener.
var listenerKey = typedBlock(h("listener", "a Caddy server"),
	readBy("address", "", func(s *caddyhttp.Server) *[]string { return &s.Listen }),
	readBy("protocol", "`http`, `https`, `h2` (h2c without TLS), `h3` (HTTP/3 next to h1/h2)", func(s *caddyhttp.Server) *[]string { return &s.Protocols }),
	readBy("tls", "TLS connection policies of the server", func(s *caddyhttp.Server) *caddytls.ConnectionPolicies { return &s.TLSConnPolicies }).withChildren(tlsListener().Children...),
	field[caddyhttp.Server]{key: h("default-route", "last route of the server")},
	field[caddyhttp.Server]{key: h("namespace", "binds the listener to a namespace: it serves only that namespace's routes (namespaces.go)")},
	field[caddyhttp.Server]{key: tenantsKey}, // tenants.go
	secondsField("request-timeout-secs", "also bounds the header read when shorter than header-timeout-secs", func(s *caddyhttp.Server) *caddy.Duration { return &s.ReadTimeout }),
	readBy("trusted-proxies", "static ranges, strict (`trusted_proxies_strict`): only from these peers do the client's X-Forwarded-*, X-Real-IP and Forwarded pass; from others the proxy sets X-Forwarded-* and X-Real-IP from the connection and removes Forwarded", func(s *caddyhttp.Server) *json.RawMessage { return &s.TrustedProxiesRaw }).extension(),
	custom("header-timeout-secs", "time to receive a request's headers (default 10 s, or request-timeout-secs when shorter); slow header senders are closed", func(s *caddyhttp.Server) *caddy.Duration { return &s.ReadHeaderTimeout },
		func(a *adapter, n *kdl.Node, s *caddyhttp.Server) {
			if secs, ok := a.integer(n, 1, 1<<31); ok {
				s.ReadHeaderTimeout = caddy.Duration(time.Duration(secs) * time.Second)
			}
		}).extension(),
	secondsField("keepalive-timeout-secs", "", func(s *caddyhttp.Server) *caddy.Duration { return &s.IdleTimeout }),
	field[caddyhttp.Server]{key: w("max-concurrent-streams", "Caddy does not expose the HTTP/2 stream limit (Go default: 250)")},
	field[caddyhttp.Server]{key: w("keepalive-max-requests", "Go's HTTP server has no per-connection request limit")},
	readBy("allow-0rtt", "`#true`: accept TLS 1.3 / QUIC 0-RTT early data (replayable: only for idempotent traffic)", func(s *caddyhttp.Server) **bool { return &s.Allow0RTT }).extension(),
)

// Keys and names of a server's parts, from their modules.
var (
	routesKey       = jsonKeyOf(func(s *caddyhttp.Server) any { return &s.Routes })
	logsKey         = jsonKeyOf(func(s *caddyhttp.Server) any { return &s.Logs })
	listenKey       = jsonKeyOf(func(s *caddyhttp.Server) any { return &s.Listen })
	handoffWrapper  = caddyconfig.JSONModuleObject(handoff.Handoff{}, "wrapper", handoff.Handoff{}.CaddyModule().ID.Name(), nil)
	tlsWrapper      = guestModule("wrapper", "tls") // caddyhttp's tlsPlaceholderWrapper, unexported
	framingName     = framing.Framing{}.CaddyModule().ID.Name()
	errorsHandler   = caddyconfig.JSONModuleObject(builtin.Builtin{Kind: "error"}, "handler", builtin.Builtin{}.CaddyModule().ID.Name(), nil)
	notFoundHandler = caddyconfig.JSONModuleObject(builtin.Builtin{Kind: "not_found"}, "handler", builtin.Builtin{}.CaddyModule().ID.Name(), nil)
)

// newServer is a Caddy server listening on addr, with the listener
// wrappers every Sentinel server has: connections accepted while a
// reload hands over are not lost; requests with malformed framing are
// refused (after TLS, so the decrypted stream is checked).
func newServer(maxHeaderBytes int) *caddyhttp.Server {
	return &caddyhttp.Server{
		AutoHTTPS: &caddyhttp.AutoHTTPSConfig{Disabled: true},
		ListenerWrappersRaw: []json.RawMessage{handoffWrapper, tlsWrapper,
			caddyconfig.JSONModuleObject(framing.Framing{MaxHeaderBytes: maxHeaderBytes}, "wrapper", framingName, nil)},
	}
}

// mapListener maps one `listener` block to a Caddy server.
func (a *adapter) mapListener(l *kdl.Node) obj {
	id := l.Args[0].Str
	srv := listenerKey.Map(a, l).(*caddyhttp.Server)
	if n := setting(l, "address"); n == nil {
		if !misspelled(l, "address") { // else the unknown-setting error says it
			a.d.errorf(l.Pos, "listener %q needs an address, e.g. address \"0.0.0.0:8080\"", id)
		}
	} else if addr, ok := a.str(n); ok {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			a.d.errorf(n.Args[0].Pos, "listener %q: address %q must be host:port, e.g. \"0.0.0.0:8080\"", id, addr)
		} else {
			srv.Listen = []string{addr}
		}
	}
	protocol := "http"
	if n := setting(l, "protocol"); n != nil {
		if s, ok := a.str(n); ok {
			protocol, _ = a.oneOf(n, s, "http", "https", "h2", "h3")
		}
	}
	tlsBlock := setting(l, "tls")
	if pn := setting(l, "protocol"); pn != nil && protocol == "http" && tlsBlock != nil {
		a.d.warnf(pn.Pos, "listeners.listener.protocol", "listener %q has protocol \"http\" and a tls block: it is served as HTTPS", id)
	}
	if protocol == "https" || protocol == "h3" || tlsBlock != nil {
		if tlsBlock == nil {
			a.d.errorf(l.Pos, "listener %q: protocol %q needs a tls { cert-file … key-file … } or tls { acme { … } } block", id, protocol)
		} else {
			srv.TLSConnPolicies = a.listenerTLS(id, tlsBlock).policies
		}
	}
	switch {
	case protocol == "h3":
		srv.Protocols = []string{"h1", "h2", "h3"}
	case protocol == "h2" && tlsBlock == nil:
		srv.Protocols = []string{"h1", "h2c"}
	case tlsBlock != nil:
		srv.Protocols = []string{"h1", "h2"}
	default:
		srv.Protocols = []string{"h1"}
	}
	if tlsBlock != nil {
		// 0-RTT early data can be replayed: Caddy accepts it unless told
		// not to, Sentinel only when the listener opts in.
		allow := false
		if n := setting(l, "allow-0rtt"); n != nil {
			allow, _ = a.boolean(n)
		}
		srv.Allow0RTT = &allow
	} else if n := setting(l, "allow-0rtt"); n != nil {
		a.d.warnf(n.Pos, "listeners.listener.allow-0rtt", "listener %q: allow-0rtt has no effect without TLS", id)
	}
	a.headerTimeout(id, l, srv)
	a.trustedProxies(id, l, srv)
	if v, ok := scopedInt(a.listenerScope(id), func(l *nsLimits) *int64 { return l.headerSize }); ok {
		srv.MaxHeaderBytes = int(v)
	} else if n := a.limitSetting("max-header-size-bytes", "max-header-size"); n != nil {
		if i, ok := a.integer(n, 1024, 1<<30); ok {
			srv.MaxHeaderBytes = int(i)
		}
	}
	wrappers := newServer(srv.MaxHeaderBytes)
	srv.AutoHTTPS, srv.ListenerWrappersRaw = wrappers.AutoHTTPS, wrappers.ListenerWrappersRaw
	// Handler errors (413, 502, 503, 504…) answer with a JSON body.
	srv.Errors = &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{HandlersRaw: []json.RawMessage{errorsHandler}}}}
	out := typedTree(srv)
	var defaultRoute string
	if n := setting(l, "default-route"); n != nil {
		defaultRoute, _ = a.str(n)
	}
	routes := a.serverRoutes(id, defaultRoute, setting(l, "default-route"))
	if tr := a.tenantRoute(id, l); tr != nil { // tenants.go
		routes = append([]any{tr}, routes...)
	}
	out[routesKey] = routes
	return out
}

// defaultHeaderTimeout bounds the time a client has to send a request's
// headers when the listener does not say (Caddy's default is a minute).
const defaultHeaderTimeout = 10 * time.Second

// headerTimeout completes the server's read_header_timeout. Without
// header-timeout-secs, the headers must arrive within 10 s, or within
// request-timeout-secs when that is shorter (but not 0): Caddy's own
// default (a minute) would let a client that drips header lines hold a
// connection far longer than the request timeout.
func (a *adapter) headerTimeout(id string, l *kdl.Node, srv *caddyhttp.Server) {
	rt := time.Duration(srv.ReadTimeout)
	if srv.ReadHeaderTimeout == 0 {
		header := defaultHeaderTimeout
		if rt > 0 && rt < header {
			header = rt
		}
		srv.ReadHeaderTimeout = caddy.Duration(header)
	} else if rt > 0 && time.Duration(srv.ReadHeaderTimeout) > rt {
		n := setting(l, "header-timeout-secs")
		a.d.warnf(n.Pos, "listeners.listener.header-timeout-secs", "listener %q: header-timeout-secs %d is above request-timeout-secs: the request timeout ends the header read first", id, int64(time.Duration(srv.ReadHeaderTimeout)/time.Second))
	}
}

// trustedProxies maps `trusted-proxies "10.0.0.0/8" "192.0.2.7" …` to the
// server's static trusted_proxies (strict: X-Forwarded-For is read from
// the right). Only from those peers do the client's X-Forwarded-*,
// X-Real-IP and Forwarded headers pass to the backends; from any other
// peer the proxy sets them from the connection.
func (a *adapter) trustedProxies(id string, l *kdl.Node, srv *caddyhttp.Server) {
	n := setting(l, "trusted-proxies")
	if n == nil {
		return
	}
	var ranges []string
	for _, v := range n.Args {
		s, ok := v.Str, v.Kind == kdl.KindString
		if !ok {
			a.d.errorf(v.Pos, "listener %q: trusted-proxies takes IP addresses or CIDR ranges as strings, not %s", id, v)
			continue
		}
		if s == "private_ranges" {
			ranges = append(ranges, s)
			continue
		}
		if _, err := netip.ParsePrefix(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				a.d.errorf(v.Pos, "listener %q: trusted-proxies %q is not an IP address or CIDR range (e.g. \"10.0.0.0/8\")", id, s)
				continue
			}
		}
		ranges = append(ranges, s)
	}
	if len(n.Args) == 0 {
		a.d.errorf(n.Pos, "listener %q: trusted-proxies needs at least one address or range, e.g. trusted-proxies \"10.0.0.0/8\"", id)
		return
	}
	if len(ranges) > 0 {
		srv.TrustedProxiesRaw = caddyconfig.JSONModuleObject(caddyhttp.StaticIPRange{Ranges: ranges}, "source", caddyhttp.StaticIPRange{}.CaddyModule().ID.Name(), nil)
		srv.TrustedProxiesStrict = 1
	}
}

// listenerTLS is the mapping of a listener's `tls` block: the server's
// connection policies and what the tls app needs for them.
type listenerTLS struct {
	policies caddytls.ConnectionPolicies
	app      tlsApp
}

// listenerTLS maps a listener's `tls` block once (the server and the tls
// app both need it).
func (a *adapter) listenerTLS(id string, t *kdl.Node) *listenerTLS {
	if lt := a.tlsOf[t]; lt != nil {
		return lt
	}
	if a.tlsOf == nil {
		a.tlsOf = make(map[*kdl.Node]*listenerTLS)
	}
	lt := &listenerTLS{}
	lt.policies = a.mapListenerTLS(id, t, &lt.app)
	a.tlsOf[t] = lt
	return lt
}

// mapListenerTLS maps a listener's `tls` block to connection policies
// and fills app (certificate files, ACME automation).
func (a *adapter) mapListenerTLS(id string, t *kdl.Node, app *tlsApp) caddytls.ConnectionPolicies {
	tag := "sentinel-listener-" + id
	base := new(caddytls.ConnectionPolicy)
	var policies caddytls.ConnectionPolicies
	hasCert := a.certSource(id, t, tag, base, app)

	// TLS versions, ciphers and client authentication apply to every
	// policy of the listener (common's fields).
	var common caddytls.ConnectionPolicy
	if n := setting(t, "min-version"); n != nil {
		if v, ok := a.tlsVersion(n); ok {
			common.ProtocolMin = v
		}
	}
	if n := setting(t, "max-version"); n != nil {
		if v, ok := a.tlsVersion(n); ok {
			common.ProtocolMax = v
		}
	}
	var suites []string
	for _, n := range settings(t, "cipher-suite") {
		suites = append(suites, a.strs(n)...)
	}
	if n := setting(t, "cipher-suites"); n != nil {
		for _, c := range n.Children {
			suites = append(suites, a.strs(c)...)
		}
		suites = append(suites, a.strsIfAny(n)...)
	}
	common.CipherSuites = a.cipherSuites(t, suites)
	caFile := ""
	if n := setting(t, "ca-file"); n != nil {
		caFile, _ = a.str(n)
	}
	clientAuth := false
	if n := setting(t, "client-auth"); n != nil {
		clientAuth, _ = a.boolean(n)
		if clientAuth && caFile == "" {
			a.d.errorf(n.Pos, "listener %q: client-auth #true needs ca-file (the CA that signs client certificates)", id)
		}
	}
	if caFile != "" {
		mode := "verify_if_given"
		if clientAuth {
			mode = "require_and_verify"
		}
		common.ClientAuthentication = &caddytls.ClientAuthentication{
			CARaw: caddyconfig.JSONModuleObject(caddytls.FileCAPool{TrustedCACertPEMFiles: []string{caFile}}, "provider", caddytls.FileCAPool{}.CaddyModule().ID.Name(), nil),
			Mode:  mode,
		}
	}
	withCommon := func(p *caddytls.ConnectionPolicy) {
		p.ProtocolMin, p.ProtocolMax, p.CipherSuites, p.ClientAuthentication = common.ProtocolMin, common.ProtocolMax, common.CipherSuites, common.ClientAuthentication
	}
	for _, n := range []string{"ocsp-stapling", "session-resumption"} {
		if s := setting(t, n); s != nil {
			if b, ok := a.boolean(s); ok && !b {
				a.d.warnf(s.Pos, "listeners.listener.tls."+n, "%s #false cannot be honoured by Caddy; it stays on", n)
			}
		}
	}
	if sc := setting(t, "sni-certs"); sc != nil {
		if n := setting(sc, "cert-folder"); n != nil {
			if dir, ok := a.str(n); ok {
				app.loadFolders = append(app.loadFolders, dir)
				hasCert = true
			}
		}
	}

	// SNI certificates: one policy per block, before the listener default.
	anyTags := []string{tag}
	for i, s := range settings(t, "sni") {
		stag := tag + "-sni-" + strconv.Itoa(i)
		p := new(caddytls.ConnectionPolicy)
		if !a.certSource(id, s, stag, p, app) {
			a.d.errorf(s.Pos, "listener %q: sni block needs cert-file and key-file, or an acme block", id)
			continue
		}
		var names []string
		for _, key := range []string{"hostnames", "priority-hostnames"} {
			if n := setting(s, key); n != nil {
				names = append(names, a.strs(n)...)
			}
		}
		if len(names) == 0 {
			// Selected by the names in the certificate itself.
			anyTags = append(anyTags, stag)
			continue
		}
		p.MatchersRaw = caddy.ModuleMap{caddytls.MatchServerName{}.CaddyModule().ID.Name(): caddyconfig.JSON(caddytls.MatchServerName(names), nil)}
		withCommon(p)
		policies = append(policies, p)
	}
	if !hasCert && len(policies) == 0 {
		a.d.errorf(t.Pos, "listener %q: tls needs cert-file and key-file, an acme block, sni certificates or sni-certs", id)
	}
	if base.DefaultSNI == "" && hasCert {
		base.CertSelection = &caddytls.CustomCertSelectionPolicy{AnyTag: anyTags}
	}
	withCommon(base)
	return append(policies, base)
}

// strsIfAny reads the arguments of n as strings when it has any.
func (a *adapter) strsIfAny(n *kdl.Node) []string {
	if len(n.Args) == 0 {
		return nil
	}
	return a.strs(n)
}

// certSource reads cert-file/key-file or an acme block from block and
// registers it in the tls app under tag. It reports whether a source was
// found. The policy selects the certificate: by tag, or by default_sni
// for ACME and internal ones. What the tls app needs goes to app.
func (a *adapter) certSource(id string, block *kdl.Node, tag string, policy *caddytls.ConnectionPolicy, app *tlsApp) bool {
	cert, key := setting(block, "cert-file"), setting(block, "key-file")
	acme := setting(block, "acme")
	if internal := setting(block, "internal"); internal != nil {
		if cert != nil || key != nil || acme != nil {
			a.d.errorf(internal.Pos, "listener %q: give one of cert-file/key-file, acme or internal", id)
			return false
		}
		domains := a.mapInternal(internal, app)
		if len(domains) > 0 {
			policy.DefaultSNI = domains[0]
		}
		return len(domains) > 0
	}
	switch {
	case cert != nil || key != nil:
		if cert == nil || key == nil {
			a.d.errorf(block.Pos, "listener %q: cert-file and key-file go together", id)
			return false
		}
		c, ok1 := a.str(cert)
		k, ok2 := a.str(key)
		if ok1 && ok2 {
			app.loadFiles = append(app.loadFiles, caddytls.CertKeyFilePair{Certificate: c, Key: k, Tags: []string{tag}})
		}
		if acme != nil {
			a.d.errorf(acme.Pos, "listener %q: give either cert-file/key-file or acme, not both", id)
		}
		policy.CertSelection = &caddytls.CustomCertSelectionPolicy{AnyTag: []string{tag}}
		return true
	case acme != nil:
		domains := a.mapACME(id, acme, app)
		if len(domains) > 0 {
			policy.DefaultSNI = domains[0]
		}
		return len(domains) > 0
	}
	return false
}

// tlsVersion maps the original's version spellings to Caddy's.
func (a *adapter) tlsVersion(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	v := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(s), "tlsv"), "tls")
	switch strings.TrimSpace(v) {
	case "1.2":
		return "tls1.2", true
	case "1.3":
		return "tls1.3", true
	}
	a.d.errorf(n.Args[0].Pos, "%s %q is not a supported TLS version (use \"1.2\" or \"1.3\")", n.Name, s)
	return "", false
}

// cipherSuites checks the names against Go's TLS 1.2 suites. TLS 1.3
// suites are fixed by Go and only warned about.
func (a *adapter) cipherSuites(t *kdl.Node, names []string) []string {
	known := map[string]bool{}
	var all []string
	for _, cs := range tls.CipherSuites() {
		known[cs.Name] = true
		all = append(all, cs.Name)
	}
	sort.Strings(all)
	var out []string
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "TLS_AES_") || strings.HasPrefix(n, "TLS_CHACHA20_") || strings.HasPrefix(n, "TLS13_"):
			a.d.warnf(t.Pos, "listeners.listener.tls.cipher-suite", "TLS 1.3 cipher suite %s is always enabled by Go and cannot be chosen", n)
		case known[n]:
			out = append(out, n)
		default:
			a.d.errorf(t.Pos, "unknown cipher suite %q%s", n, suggest(n, all))
		}
	}
	return out
}
