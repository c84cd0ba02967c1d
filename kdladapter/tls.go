package kdladapter

import (
	"sort"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// tlsApp collects what the listeners need from Caddy's tls app.
type tlsApp struct {
	loadFiles   []obj
	loadFolders []string
	automate    []string
	policies    []obj
	// internal is set when a listener uses Caddy's local CA.
	internal bool
}

// json renders the tls app, or nil when no listener uses TLS.
func (t *tlsApp) json() obj {
	if len(t.loadFiles) == 0 && len(t.loadFolders) == 0 && len(t.automate) == 0 {
		return nil
	}
	certs := obj{}
	if len(t.loadFiles) > 0 {
		certs["load_files"] = t.loadFiles
	}
	if len(t.loadFolders) > 0 {
		certs["load_folders"] = t.loadFolders
	}
	if len(t.automate) > 0 {
		names := append([]string(nil), t.automate...)
		sort.Strings(names)
		certs["automate"] = dedup(names)
	}
	app := obj{"certificates": certs}
	if len(t.policies) > 0 {
		app["automation"] = obj{"policies": t.policies}
	}
	return app
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
func (a *adapter) mapInternal(n *kdl.Node) []string {
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
	a.tls.internal = true
	a.tls.automate = append(a.tls.automate, domains...)
	a.tls.policies = append(a.tls.policies, obj{"subjects": domains, "issuers": []obj{{"module": "internal"}}})
	return domains
}

// Let's Encrypt directories.
const (
	letsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	letsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// mapACME maps an `acme` block to an automation policy and returns the
// domains it manages.
func (a *adapter) mapACME(id string, acme *kdl.Node) []string {
	var domains []string
	if n := setting(acme, "domains"); n != nil {
		domains = a.strs(n)
	} else {
		a.d.errorf(acme.Pos, "listener %q: acme needs domains \"example.com\" …", id)
	}
	issuer := obj{"module": "acme"}
	if n := setting(acme, "email"); n != nil {
		if s, ok := a.str(n); ok {
			issuer["email"] = s
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
			issuer["ca"] = s
		}
	} else if staging {
		issuer["ca"] = letsEncryptStaging
	} else {
		issuer["ca"] = letsEncryptProduction
	}
	if eab := setting(acme, "eab"); eab != nil {
		kid, mac := setting(eab, "kid"), setting(eab, "hmac-key")
		if kid == nil || mac == nil {
			a.d.errorf(eab.Pos, "listener %q: eab needs kid and hmac-key", id)
		} else {
			k, _ := a.str(kid)
			m, _ := a.str(mac)
			issuer["external_account"] = obj{"key_id": k, "mac_key": m}
		}
	}
	if n := setting(acme, "storage"); n != nil {
		if s, ok := a.str(n); ok {
			if a.storageRoot != "" && a.storageRoot != s {
				a.d.warnf(n.Pos, "acme.storage", "only one ACME storage folder can be used; %q is used", a.storageRoot)
			} else {
				a.storageRoot = s
			}
		}
	}
	policy := obj{"subjects": domains, "issuers": []obj{issuer}}
	if n := setting(acme, "challenge-type"); n != nil {
		if s, ok := a.str(n); ok {
			switch strings.ToLower(s) {
			case "http-01", "http01", "http":
				issuer["challenges"] = obj{"tls-alpn": obj{"disabled": true}}
			case "tls-alpn-01", "tls-alpn", "tlsalpn01":
				issuer["challenges"] = obj{"http": obj{"disabled": true}}
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
				policy["key_type"] = map[string]string{"ecdsa-p256": "p256", "ecdsa-p384": "p384", "rsa2048": "rsa2048", "rsa4096": "rsa4096"}[kt]
			}
		}
	}
	if n := setting(acme, "renew-before-days"); n != nil {
		if d, ok := a.integer(n, 1, 89); ok {
			policy["renewal_window_ratio"] = float64(d) / 90
		}
	}
	a.tls.automate = append(a.tls.automate, domains...)
	a.tls.policies = append(a.tls.policies, policy)
	return domains
}
