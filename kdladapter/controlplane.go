package kdladapter

import (
	"net"
	"sort"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// sentinelApp builds the `sentinel` app: the registry's upstreams and
// routes, and the control-plane API.
func (a *adapter) sentinelApp() obj {
	app := obj{}
	ids := a.upstreamIDs()
	var ups []obj
	for _, id := range ids {
		b := a.base(a.upstreams[id])
		u := obj{"id": id, "targets": b.targets}
		if b.active != nil {
			u["health_check"] = b.active
		}
		ups = append(ups, u)
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
	for _, au := range settings(n, "auth") {
		for _, c := range au.Children {
			switch c.Name {
			case "type":
				if s, ok := a.str(c); ok {
					a.oneOf(c, s, "bearer")
				}
			case "token":
				tok, ok := a.str(c)
				if !ok {
					continue
				}
				if tok == "" {
					a.d.errorf(c.Pos, "admin-api token is empty (is its environment variable set?)")
					continue
				}
				t := obj{"token": tok}
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
						if p.Value.Kind == kdl.KindString {
							t["name"] = p.Value.Str
						}
					default:
						a.d.errorf(p.Pos, "unknown token property %q (scope, name)", p.Name)
					}
				}
				tokens = append(tokens, t)
			default:
				a.d.errorf(c.Pos, "unknown setting %q in admin-api.auth%s", c.Name, suggest(c.Name, []string{"type", "token"}))
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
	if s := setting(n, "state-file"); s != nil {
		app["state_file"], _ = a.str(s)
	}
	app["api"] = api
}
