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

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// sentinelApp builds the `sentinel` app: the registry's upstreams and
// routes, and the control-plane API.
func (a *adapter) sentinelApp() obj {
	app := obj{}
	ids := a.upstreamIDs()
	// Encoded at once: a large config has 100,000 of them.
	var ups []json.RawMessage
	for _, id := range ids {
		b := a.base(a.upstreams[id])
		u := obj{"id": id, "targets": b.targets}
		if b.active != nil {
			u["health_check"] = b.active
		}
		ups = append(ups, a.frags.encode(u))
	}
	if len(ups) > 0 {
		app["upstreams"] = ups
	}
	var routes []string
	for _, r := range a.routeTable() {
		routes = append(routes, r.id)
	}
	sort.Strings(routes)
	if len(routes) > 0 {
		app["routes"] = routes
	}
	if a.filename != "" && a.filename != "-" {
		app["config_file"] = a.filename
	}
	a.mapAdminAPI(app)
	if len(app) == 0 {
		return nil
	}
	return app
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

// mapAdminAPI maps the admin-api block onto the app.
func (a *adapter) mapAdminAPI(app obj) {
	n := a.adminAPI
	if n == nil {
		return
	}
	if e := setting(n, "enabled"); e != nil {
		if on, ok := a.boolean(e); ok && !on {
			return
		}
	}
	api := obj{}
	addr := "127.0.0.1:9901"
	if s := setting(n, "address"); s != nil {
		if v, ok := a.str(s); ok {
			if _, _, err := net.SplitHostPort(v); err != nil {
				a.d.errorf(s.Args[0].Pos, "admin-api address %q must be host:port", v)
			}
			addr = v
		}
	}
	api["listen"] = addr
	var tokens []obj
	hashes := map[string]*kdl.Node{}
	names := map[string]*kdl.Node{}
	for _, au := range settings(n, "auth") {
		for _, c := range au.Children {
			switch c.Name {
			case "type":
				if s, ok := a.str(c); ok {
					a.oneOf(c, s, "bearer")
				}
			case "token":
				if t := a.apiToken(c, len(tokens), hashes, names); t != nil {
					tokens = append(tokens, t)
				}
			}
		}
	}
	if len(tokens) > 0 {
		api["tokens"] = tokens
	}
	if t := setting(n, "tls"); t != nil {
		tc := obj{}
		for key, field := range map[string]string{"cert-file": "cert_file", "key-file": "key_file", "client-ca": "client_ca_file"} {
			if s := setting(t, key); s != nil {
				tc[field], _ = a.str(s)
			}
		}
		if s := setting(t, "allowed-identities"); s != nil {
			tc["allowed_identities"] = a.strs(s)
		}
		api["tls"] = tc
	}
	if len(tokens) == 0 && setting(setting(n, "tls"), "client-ca") == nil {
		a.d.errorf(n.Pos, "admin-api: the control-plane API refuses unauthenticated calls: add auth { type \"bearer\"; token \"${ADMIN_API_TOKEN}\" } (or tls { client-ca … })")
	}
	if s := setting(n, "max-body-bytes"); s != nil {
		if v, ok := a.integer(s, 1024, 1<<30); ok {
			api["max_body_bytes"] = v
		}
	}
	if s := setting(n, "allowed-target-networks"); s != nil {
		nets := a.strs(s)
		for i, v := range nets {
			_, perr := netip.ParsePrefix(v)
			_, aerr := netip.ParseAddr(v)
			if perr != nil && aerr != nil && i < len(s.Args) {
				a.d.errorf(s.Args[i].Pos, "allowed-target-networks %q is not a CIDR prefix (10.0.0.0/8) or an IP address", v)
			}
		}
		api["allowed_target_networks"] = nets
	}
	if s := setting(n, "state-file"); s != nil {
		app["state_file"], _ = a.str(s)
	}
	if f := setting(n, "fleet"); f != nil {
		if st := a.fleetStore(f); st != nil {
			app["store"] = st
		}
		if s := setting(n, "state-file"); s != nil {
			a.d.errorf(s.Pos, "admin-api: state-file and fleet exclude each other (in fleet mode the state lives in etcd)")
		}
	}
	app["api"] = api
}

// apiToken maps one `token` of admin-api.auth. The Caddy JSON gets the
// token's SHA-256, never the token: the JSON is shown by Caddy's admin
// endpoint, kept in autosave.json and logged on errors. The checks the
// API would make on the token itself (not empty, no white space or
// control characters, not repeated) are made here, on the KDL position,
// without showing the token. i is the token's index.
func (a *adapter) apiToken(c *kdl.Node, i int, hashes, names map[string]*kdl.Node) obj {
	tok, ok := a.str(c)
	if !ok {
		return nil
	}
	switch {
	case tok == "":
		a.d.errorf(c.Pos, "admin-api token is empty (is its environment variable set?)")
		return nil
	case !validToken(tok):
		a.d.errorf(c.Args[0].Pos, "admin-api token contains white space or control characters")
		return nil
	}
	sum := sha256.Sum256([]byte(tok))
	hash := hex.EncodeToString(sum[:])
	if prev, dup := hashes[hash]; dup {
		a.d.errorf(c.Args[0].Pos, "admin-api token repeats the token at %s (each token must be distinct)", prev.Pos)
		return nil
	}
	hashes[hash] = c
	t := obj{"token_sha256": hash}
	name := fmt.Sprintf("token-%d", i+1)
	for _, p := range c.Props {
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
			t["scopes"] = []string{sc}
		case "name":
			if p.Value.Kind != kdl.KindString {
				a.d.errorf(p.Pos, "name must be a string")
				continue
			}
			t["name"] = p.Value.Str
			name = p.Value.Str
		default:
			a.d.errorf(p.Pos, "unknown token property %q (scope, name)", p.Name)
		}
	}
	if prev, dup := names[name]; dup {
		a.d.errorf(c.Pos, "admin-api token name %q is already the name of the token at %s", name, prev.Pos)
	}
	names[name] = c
	return t
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
