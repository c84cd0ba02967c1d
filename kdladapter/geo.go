package kdladapter

import (
	"path/filepath"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/geo"
)

// GeoIP filtering: a filter of type "geo", mapped onto the sentinel_geo
// handler (geo.Handler). The database path is not checked here (the file
// may differ where the config runs): loading the config fails when it
// cannot be opened.

// geoFilterKey declares the keys of a filter of type "geo" and their
// mapping onto geo.Handler. Built once, not changed after.
var geoFilterKey = geoFilterKeys()

func geoFilterKeys() *Key {
	type G = geo.Handler
	return typedBlock(h("geo", "`sentinel_geo` handler (MaxMind .mmdb; see docs/geoip.md)"),
		stringField("database-path", "required; a MaxMind `.mmdb` file (GeoIP2/GeoLite2 Country or City), opened when the config is loaded and reloaded when it changes", func(g *G) *string { return &g.Database }),
		plainField(h("database-type", "`maxmind` (IP2Location `.bin` databases are not supported: error)"), func(a *adapter, n *kdl.Node, _ *G) {
			if s, ok := a.str(n); ok && strings.EqualFold(s, "ip2location") {
				a.d.errorf(n.Args[0].Pos, "database-type %q: IP2Location databases are not supported; use a MaxMind .mmdb database (GeoLite2-Country or GeoIP2-Country)", s)
			} else if ok {
				a.oneOf(n, s, "maxmind", "ip2location")
			}
		}),
		fieldOf("action", "`block` (default), `allow` (only the countries listed pass), `log-only`", (*adapter).geoAction, func(g *G) *string { return &g.Action }),
		fieldOf("countries", "ISO 3166-1 alpha-2 codes: `\"US,CN\"` (the original's one comma-separated string) or several strings; required with block and allow", (*adapter).geoCountries, func(g *G) *[]string { return &g.Countries }),
		choiceField("on-failure", "`open` (default: requests whose address has no country pass), `closed` (they get status-code)", func(g *G) *string { return &g.OnFailure }, "open", "closed"),
		intField("status-code", "status of blocked requests (default 403)", 400, 599, func(g *G) *int { return &g.StatusCode }),
		stringField("block-message", "body of blocked requests (default: the status text)", func(g *G) *string { return &g.Message }),
		field[G]{key: w("cache-ttl-secs", "lookups are not cached: the database is held in memory and a lookup takes well under a microsecond")},
		optBoolField("add-country-header", "`X-GeoIP-Country` on the request to the upstream (default #true; a client's own is always removed)", func(g *G) **bool { return &g.CountryHeader }),
	)
}

// geoAction reads action.
func (a *adapter) geoAction(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	act, ok := a.oneOf(n, s, "block", "allow", "log-only")
	return strings.ReplaceAll(act, "-", "_"), ok
}

// geoCountries reads countries: comma-separated country codes in one or
// more strings, each checked at its own position.
func (a *adapter) geoCountries(n *kdl.Node) ([]string, bool) {
	var codes []string
	ok := true
	for _, v := range n.Args {
		if v.Kind != kdl.KindString {
			a.d.errorf(v.Pos, "countries takes strings of country codes (\"US,CN\"), not %s %s", v.Kind, v)
			ok = false
			continue
		}
		for _, c := range strings.Split(v.Str, ",") {
			if strings.TrimSpace(c) == "" {
				continue
			}
			code, known := geo.NormalizeCountry(c)
			if !known {
				a.d.errorf(v.Pos, "countries: %q is not an ISO 3166-1 alpha-2 country code%s", strings.TrimSpace(c), countryHint(code))
				ok = false
				continue
			}
			codes = append(codes, code)
		}
	}
	if len(codes) == 0 && ok {
		a.d.errorf(n.Pos, "countries needs at least one country code, e.g. countries \"US,CN\"")
		ok = false
	}
	return codes, ok
}

// countryHint suggests the ISO code of a common wrong one.
func countryHint(code string) string {
	if c := map[string]string{"UK": "GB", "EL": "GR", "EN": "GB"}[code]; c != "" {
		return " (did you mean \"" + c + "\"?)"
	}
	if len(code) == 3 {
		return " (two letters, e.g. \"US\")"
	}
	return ""
}

// geoFilter completes a geo filter used by a route: its name (the
// metrics' filter label) and the checks that need the whole block.
func (a *adapter) geoFilter(filterID string, f *kdl.Node, g *geo.Handler) obj {
	g.Name = filterID
	if setting(f, "database-path") == nil {
		a.d.errorf(f.Pos, "filter %q: type \"geo\" needs database-path (a MaxMind .mmdb file)", filterID)
	} else if setting(f, "database-type") == nil && strings.EqualFold(filepath.Ext(g.Database), ".bin") {
		a.d.errorf(setting(f, "database-path").Args[0].Pos, "filter %q: database-path %q looks like an IP2Location database; only MaxMind .mmdb databases are supported", filterID, g.Database)
	}
	if len(g.Countries) == 0 && g.Action != geo.ActionLogOnly && setting(f, "countries") == nil {
		act := g.Action
		if act == "" {
			act = geo.ActionBlock
		}
		a.d.errorf(f.Pos, "filter %q: action %q needs countries, e.g. countries \"US,CN\"", filterID, strings.ReplaceAll(act, "_", "-"))
	}
	return typedObj(g, "handler", "sentinel_geo")
}
