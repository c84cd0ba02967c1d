package kdladapter

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/controlapi"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
)

// sentinelAppJSON writes the `sentinel` app (its upstreams are most of a
// large config's output: written from the app's types without reflection
// per value).
var sentinelAppJSON = newModuleJSON[sentinelapp.App]("", "")

// sentinelApp builds the `sentinel` app (sentinelapp.App): the registry's
// upstreams and routes, and the control-plane API; nil when it has none.
// admin is Caddy's admin endpoint as the config sets it (nil: Caddy's
// default).
func (a *adapter) sentinelApp(admin *caddy.AdminConfig) json.RawMessage {
	var app sentinelapp.App
	ids := a.upstreamIDs()
	if len(ids) > 0 {
		app.Upstreams = make([]sentinelapp.UpstreamConfig, 0, len(ids))
	}
	for _, id := range ids {
		// A released base (its routes are mapped) kept what this needs.
		b := a.proxies[id]
		if b == nil {
			b = a.base(a.upstreams[id])
		}
		app.Upstreams = append(app.Upstreams, sentinelapp.UpstreamConfig{ID: id, Targets: b.targets, HealthCheck: b.active, Discovery: b.discovery})
	}
	if table := a.routeTable(); len(table) > 0 {
		app.Routes = make([]string, 0, len(table))
		for _, r := range table {
			app.Routes = append(app.Routes, r.id)
		}
	}
	sort.Strings(app.Routes)
	if a.filename != "" && a.filename != "-" {
		app.ConfigFile = a.filename
	}
	a.mapAdminAPI(&app)
	if l := ownAdminAddress(admin); app.API != nil && l != "" {
		// Targets added through the API may not point at Caddy's admin
		// endpoint (the app always refuses Caddy's default one).
		app.OwnAddresses = []string{l}
	}
	if app.Upstreams == nil && app.Routes == nil && app.ConfigFile == "" && app.API == nil && app.StateFile == "" && app.Store == nil {
		return nil
	}
	// The app is most of a large configuration's output (about 200
	// bytes an upstream): written into a buffer sized for it, instead of
	// the scratch growing by a quarter at a time (four times its size
	// allocated) and then copied.
	buf := sentinelAppJSON.append(make([]byte, 0, appSizeHint(&app)), &app)
	if cap(buf)-len(buf) > len(buf)/8 {
		// Far less than the hint: the fragments' chunks hold a copy,
		// not the buffer's unused part.
		return a.frags.add(buf)
	}
	return buf
}

// appSizeHint is about the length of app's JSON: the members of an
// upstream and its targets, its health check's usual ones.
func appSizeHint(app *sentinelapp.App) int {
	n := 4096
	for _, r := range app.Routes {
		n += 4 + len(r)
	}
	for _, u := range app.Upstreams {
		n += 24 + len(u.ID) + len(u.Discovery)
		for _, t := range u.Targets {
			n += 16 + len(t.Address)
			if t.Weight != 0 {
				n += 11
			}
		}
		if u.HealthCheck != nil {
			n += 58 + len(u.HealthCheck.Path)
		}
	}
	return n
}

// ownAdminAddress is the host:port of Caddy's admin endpoint when the
// config moves it from Caddy's default to another TCP address, else "".
func ownAdminAddress(admin *caddy.AdminConfig) string {
	if admin == nil || admin.Disabled || admin.Listen == "" || admin.Listen == caddy.DefaultAdminListen {
		return ""
	}
	na, err := caddy.ParseNetworkAddress(admin.Listen)
	if err != nil || na.IsUnixNetwork() || na.IsFdNetwork() || na.PortRangeSize() != 1 {
		return ""
	}
	return na.JoinHostPort(0)
}

// apiEnabled reports whether the config has an admin-api block that is
// not `enabled #false`.
func (a *adapter) apiEnabled() bool {
	if a.adminAPI == nil {
		return false
	}
	if e := setting(a.adminAPI, "enabled"); e != nil && len(e.Args) == 1 && e.Args[0].Kind == kdl.KindBool {
		return e.Args[0].Bool
	}
	return true
}

// adminAPIKey declares `admin-api { … }`: the control-plane API of the
// sentinel app (controlapi.Config). enabled, state-file and fleet are
// read by mapAdminAPI: the first says whether there is an API, the others
// are settings of the app.
var adminAPIKey = ext(typedBlockInit(h("admin-api", "the control-plane API (`/api/v1`) of the `sentinel` app, on its own listener"),
	func(c *controlapi.Config) { c.Listen = controlapi.DefaultListen },
	field[controlapi.Config]{key: h("enabled", "`#false` turns the API off")},
	custom("address", "listen address (default 127.0.0.1:9901)", func(c *controlapi.Config) *string { return &c.Listen },
		func(a *adapter, n *kdl.Node, c *controlapi.Config) {
			if v, ok := a.str(n); ok {
				if _, _, err := net.SplitHostPort(v); err != nil {
					a.d.errorf(n.Args[0].Pos, "admin-api address %q must be host:port", v)
				}
				c.Listen = v
			}
		}),
	// Every auth block is read (mapAdminAPI), its tokens checked against
	// those of the others.
	readBy("auth", "bearer tokens; required (or tls.client-ca)", func(c *controlapi.Config) *[]controlapi.Token { return &c.Tokens }).withChildren(
		h("type", "`\"bearer\"`"),
		h("token", "`token \"${ADMIN_API_TOKEN}\" [scope=\"read\"|\"operate\"|\"admin\"] [name=\"…\"] [namespace=\"team-a\"]` (repeatable; a namespace limits the token to that namespace's upstreams and routes); only its SHA-256 goes into the Caddy JSON"),
	),
	blockField(typedBlock(h("tls", "HTTPS for the API, optionally with client certificates"),
		stringField("cert-file", "server certificate", func(c *controlapi.TLSConfig) *string { return &c.CertFile }),
		stringField("key-file", "server key", func(c *controlapi.TLSConfig) *string { return &c.KeyFile }),
		stringField("client-ca", "CA of client certificates (mTLS)", func(c *controlapi.TLSConfig) *string { return &c.ClientCAFile }),
		stringsField("allowed-identities", "client certificate CN or DNS names allowed", func(c *controlapi.TLSConfig) *[]string { return &c.AllowedIdentities }),
	), func(c *controlapi.Config) **controlapi.TLSConfig { return &c.TLS }),
	field[controlapi.Config]{key: h("state-file", "where API changes are saved, to survive restarts (the app's `state_file`)")},
	// Mapped by mapAdminAPI onto the app's store (fleet.go).
	field[controlapi.Config]{key: fleetBlock},
	custom("max-body-bytes", "request body limit (default 1 MiB)", func(c *controlapi.Config) *int64 { return &c.MaxBodyBytes },
		func(a *adapter, n *kdl.Node, c *controlapi.Config) {
			if v, ok := a.integer(n, 1024, 1<<30); ok {
				c.MaxBodyBytes = v
			}
		}),
	boolField("config-editor", "`#true` lets an admin token write the config file from the admin UI's editor (PUT /api/v1/config/source); off by default",
		func(c *controlapi.Config) *bool { return &c.ConfigEditor }),
	custom("allowed-target-networks", "CIDR prefixes or IPs that targets added through the API must be in (may include loopback); default: any address but loopback, link-local, unspecified, multicast and the proxy's own",
		func(c *controlapi.Config) *[]string { return &c.AllowedTargetNetworks },
		func(a *adapter, n *kdl.Node, c *controlapi.Config) {
			nets := a.strs(n)
			for i, v := range nets {
				_, perr := netip.ParsePrefix(v)
				_, aerr := netip.ParseAddr(v)
				if perr != nil && aerr != nil && i < len(n.Args) {
					a.d.errorf(n.Args[i].Pos, "allowed-target-networks %q is not a CIDR prefix (10.0.0.0/8) or an IP address", v)
				}
			}
			c.AllowedTargetNetworks = nets
		}),
))

// readAuth reads an auth block's tokens; hashes and names are those of
// the tokens read before, with their nodes.
func (a *adapter) readAuth(au *kdl.Node, c *controlapi.Config, hashes, names map[string]*kdl.Node) {
	for _, n := range au.Children {
		switch n.Name {
		case "type":
			if s, ok := a.str(n); ok {
				a.oneOf(n, s, "bearer")
			}
		case "token":
			if t, ok := a.apiToken(n, len(c.Tokens), hashes, names); ok {
				c.Tokens = append(c.Tokens, t)
			}
		}
	}
}

// mapAdminAPI maps the admin-api block onto the app: its API, and its
// StateFile or Store.
func (a *adapter) mapAdminAPI(app *sentinelapp.App) {
	n := a.adminAPI
	if n == nil || !a.apiEnabled() {
		return
	}
	if e := setting(n, "enabled"); e != nil {
		a.boolean(e) // reports a value that is not a boolean
	}
	api := adminAPIKey.Map(a, n).(*controlapi.Config)
	hashes, names := map[string]*kdl.Node{}, map[string]*kdl.Node{}
	for _, au := range settings(n, "auth") {
		a.readAuth(au, api, hashes, names)
	}
	if len(api.Tokens) == 0 && (api.TLS == nil || api.TLS.ClientCAFile == "") {
		a.d.errorf(n.Pos, "admin-api: the control-plane API refuses unauthenticated calls: add auth { type \"bearer\"; token \"${ADMIN_API_TOKEN}\" } (or tls { client-ca … })")
	}
	if s := setting(n, "state-file"); s != nil {
		app.StateFile, _ = a.str(s)
	}
	if f := setting(n, "fleet"); f != nil {
		app.Store = a.fleetStore(f)
		if s := setting(n, "state-file"); s != nil {
			a.d.errorf(s.Pos, "admin-api: state-file and fleet exclude each other (in fleet mode the state lives in etcd)")
		}
	}
	app.API = api
}

// apiToken maps one `token` of admin-api.auth. The Caddy JSON gets the
// token's SHA-256, never the token: the JSON is shown by Caddy's admin
// endpoint, kept in autosave.json and logged on errors. The checks the
// API would make on the token itself (not empty, no white space or
// control characters, not repeated) are made here, on the KDL position,
// without showing the token. i is the token's index.
func (a *adapter) apiToken(c *kdl.Node, i int, hashes, names map[string]*kdl.Node) (controlapi.Token, bool) {
	tok, ok := a.str(c)
	if !ok {
		return controlapi.Token{}, false
	}
	switch {
	case tok == "":
		a.d.errorf(c.Pos, "admin-api token is empty (is its environment variable set?)")
		return controlapi.Token{}, false
	case !validToken(tok):
		a.d.errorf(c.Args[0].Pos, "admin-api token contains white space or control characters")
		return controlapi.Token{}, false
	}
	sum := sha256.Sum256([]byte(tok))
	hash := hex.EncodeToString(sum[:])
	if prev, dup := hashes[hash]; dup {
		a.d.errorf(c.Args[0].Pos, "admin-api token repeats the token at %s (each token must be distinct)", prev.Pos)
		return controlapi.Token{}, false
	}
	hashes[hash] = c
	t := controlapi.Token{TokenSHA256: hash}
	name := fmt.Sprintf("token-%d", i+1)
	for _, p := range c.Props() {
		switch p.Name {
		case "scope":
			if p.Value.Kind != kdl.KindString {
				a.d.errorf(p.Pos, "scope must be a string")
				continue
			}
			sc := strings.ToLower(p.Value.Str)
			if sc != "read" && sc != "operate" && sc != "admin" {
				a.d.errorf(p.Pos, "scope %q is not one of read, operate, admin%s", p.Value.Str, suggest(sc, []string{"read", "operate", "admin"}))
			}
			t.Scopes = []string{sc}
		case "name":
			if p.Value.Kind != kdl.KindString {
				a.d.errorf(p.Pos, "name must be a string")
				continue
			}
			t.Name = p.Value.Str
			name = p.Value.Str
		case "namespace":
			t.Namespace = a.tokenNamespace(p) // namespaces.go
		default:
			a.d.errorf(p.Pos, "unknown token property %q (scope, name, namespace)", p.Name)
		}
	}
	if prev, dup := names[name]; dup {
		a.d.errorf(c.Pos, "admin-api token name %q is already the name of the token at %s", name, prev.Pos)
	}
	names[name] = c
	return t, true
}

// validToken reports whether a token has no white space or control
// characters (the API's rule: nothing at or below ' ', nor DEL).
func validToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
