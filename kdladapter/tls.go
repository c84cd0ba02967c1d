package kdladapter

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddypki"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/caddy/v2/modules/filestorage"
	acmez "github.com/mholt/acmez/v3/acme"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// tlsApp collects what the listeners need from Caddy's tls app.
type tlsApp struct {
	loadFiles   caddytls.FileLoader
	loadFolders caddytls.FolderLoader
	automate    []string
	policies    []*caddytls.AutomationPolicy
	// internal is set when a listener uses Caddy's local CA.
	internal bool
}

// json renders the tls app (caddytls.TLS), or nil when no listener uses
// TLS.
func (t *tlsApp) json() obj {
	if len(t.loadFiles) == 0 && len(t.loadFolders) == 0 && len(t.automate) == 0 {
		return nil
	}
	certs := caddy.ModuleMap{}
	if len(t.loadFiles) > 0 {
		certs[caddytls.FileLoader{}.CaddyModule().ID.Name()] = caddyconfig.JSON(t.loadFiles, nil)
	}
	if len(t.loadFolders) > 0 {
		certs[caddytls.FolderLoader{}.CaddyModule().ID.Name()] = caddyconfig.JSON(t.loadFolders, nil)
	}
	if len(t.automate) > 0 {
		names := append([]string(nil), t.automate...)
		sort.Strings(names)
		certs[caddytls.AutomateLoader{}.CaddyModule().ID.Name()] = caddyconfig.JSON(dedup(names), nil)
	}
	app := &caddytls.TLS{CertificatesRaw: certs}
	if len(t.policies) > 0 {
		app.Automation = &caddytls.AutomationConfig{Policies: t.policies}
	}
	return typedTree(app)
}

// tlsApp is what the listeners need from the tls app, in their order.
func (a *adapter) tlsApp() *tlsApp {
	var app tlsApp
	for _, l := range a.listeners {
		t := setting(l, "tls")
		if t == nil || len(l.Args) == 0 {
			continue
		}
		lt := a.listenerTLS(l.Args[0].Str, t)
		app.loadFiles = append(app.loadFiles, lt.app.loadFiles...)
		app.loadFolders = append(app.loadFolders, lt.app.loadFolders...)
		app.automate = append(app.automate, lt.app.automate...)
		app.policies = append(app.policies, lt.app.policies...)
		app.internal = app.internal || lt.app.internal
	}
	return &app
}

// pki is the pki app when a listener uses Caddy's local CA: it never
// touches the system trust store from a config.
func (t *tlsApp) pki() obj {
	if !t.internal {
		return nil
	}
	no := false
	return typedTree(caddypki.PKI{CAs: map[string]*caddypki.CA{caddypki.DefaultCAID: {InstallTrust: &no}}})
}

func dedup(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// mapInternal maps `internal` (certificates from Caddy's local CA) and
// returns the names it issues for.
func (a *adapter) mapInternal(n *kdl.Node, app *tlsApp) []string {
	domains := []string{"localhost", "127.0.0.1", "::1"}
	if len(n.Children) == 0 {
		if on, ok := a.boolean(n); !ok || !on {
			return nil
		}
	}
	if d := setting(n, "domains"); d != nil {
		domains = a.strs(d)
	}
	for _, c := range n.Children {
		if c.Name != "domains" {
			a.d.errorf(c.Pos, "unknown setting %q in tls.internal (did you mean \"domains\"?)", c.Name)
		}
	}
	app.internal = true
	app.automate = append(app.automate, domains...)
	app.policies = append(app.policies, &caddytls.AutomationPolicy{SubjectsRaw: domains,
		IssuersRaw: []json.RawMessage{guestModule("module", caddytls.InternalIssuer{}.CaddyModule().ID.Name())}})
	return domains
}

// Let's Encrypt directories.
const (
	letsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	letsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// acmeStorage is Caddy's storage (the file system at the folder of the
// listeners' acme `storage`, the first one given), or nil.
func (a *adapter) acmeStorage() obj {
	root := ""
	for _, acme := range a.acmeBlocks() {
		n := setting(acme, "storage")
		if n == nil {
			continue
		}
		if s, ok := a.str(n); ok {
			if root != "" && root != s {
				a.d.warnf(n.Pos, "acme.storage", "only one ACME storage folder can be used; %q is used", root)
			} else {
				root = s
			}
		}
	}
	if root == "" {
		return nil
	}
	return typedObj(filestorage.FileStorage{Root: root}, "module", filestorage.FileStorage{}.CaddyModule().ID.Name())
}

// acmeBlocks are the listeners' acme blocks (of their tls and sni
// blocks), in order.
func (a *adapter) acmeBlocks() []*kdl.Node {
	var out []*kdl.Node
	for _, l := range a.listeners {
		t := setting(l, "tls")
		if t == nil {
			continue
		}
		out = append(out, settings(t, "acme")[:min(1, len(settings(t, "acme")))]...)
		for _, s := range settings(t, "sni") {
			out = append(out, settings(s, "acme")[:min(1, len(settings(s, "acme")))]...)
		}
	}
	return out
}

// mapACME maps an `acme` block to an automation policy and returns the
// domains it manages.
func (a *adapter) mapACME(id string, acme *kdl.Node, app *tlsApp) []string {
	var domains []string
	if n := setting(acme, "domains"); n != nil {
		domains = a.strs(n)
	} else {
		a.d.errorf(acme.Pos, "listener %q: acme needs domains \"example.com\" …", id)
	}
	issuer := new(caddytls.ACMEIssuer)
	if n := setting(acme, "email"); n != nil {
		if s, ok := a.str(n); ok {
			issuer.Email = s
		}
	} else {
		a.d.errorf(acme.Pos, "listener %q: acme needs an email (the ACME account contact)", id)
	}
	staging := false
	if n := setting(acme, "staging"); n != nil {
		staging, _ = a.boolean(n)
	}
	if n := setting(acme, "server-url"); n != nil {
		if s, ok := a.str(n); ok {
			issuer.CA = s
		}
	} else if staging {
		issuer.CA = letsEncryptStaging
	} else {
		issuer.CA = letsEncryptProduction
	}
	if eab := setting(acme, "eab"); eab != nil {
		kid, mac := setting(eab, "kid"), setting(eab, "hmac-key")
		if kid == nil || mac == nil {
			a.d.errorf(eab.Pos, "listener %q: eab needs kid and hmac-key", id)
		} else {
			k, _ := a.str(kid)
			m, _ := a.str(mac)
			issuer.ExternalAccount = &acmez.EAB{KeyID: k, MACKey: m}
		}
	}
	policy := &caddytls.AutomationPolicy{SubjectsRaw: domains}
	if n := setting(acme, "challenge-type"); n != nil {
		if s, ok := a.str(n); ok {
			switch strings.ToLower(s) {
			case "http-01", "http01", "http":
				issuer.Challenges = &caddytls.ChallengesConfig{TLSALPN: &caddytls.TLSALPNChallengeConfig{Disabled: true}}
			case "tls-alpn-01", "tls-alpn", "tlsalpn01":
				issuer.Challenges = &caddytls.ChallengesConfig{HTTP: &caddytls.HTTPChallengeConfig{Disabled: true}}
			case "dns-01", "dns01", "dns":
				a.d.notYet(n.Pos, "dns-01 challenges (DNS provider modules)", "challenge-type \""+s+"\"")
			default:
				a.d.errorf(n.Args[0].Pos, "challenge-type %q is not one of http-01, tls-alpn-01, dns-01", s)
			}
		}
	}
	if n := setting(acme, "key-type"); n != nil {
		if s, ok := a.str(n); ok {
			if kt, ok := a.oneOf(n, s, "ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa4096"); ok {
				policy.KeyType = map[string]string{"ecdsa-p256": "p256", "ecdsa-p384": "p384", "rsa2048": "rsa2048", "rsa4096": "rsa4096"}[kt]
			}
		}
	}
	if n := setting(acme, "renew-before-days"); n != nil {
		if d, ok := a.integer(n, 1, 89); ok {
			policy.RenewalWindowRatio = float64(d) / 90
		}
	}
	policy.IssuersRaw = []json.RawMessage{caddyconfig.JSONModuleObject(issuer, "module", issuer.CaddyModule().ID.Name(), nil)}
	app.automate = append(app.automate, domains...)
	app.policies = append(app.policies, policy)
	return domains
}
