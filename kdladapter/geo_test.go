package kdladapter

import (
	"fmt"
	"strings"
	"testing"
)

// geoHandlers returns the sentinel_geo handlers of route r in server s.
func geoHandlers(t *testing.T, out []byte, server string, route int) []map[string]any {
	t.Helper()
	var hs []map[string]any
	for _, m := range serverRoutes[map[string]any](t, out)[server][route] {
		if m["handler"] == "sentinel_geo" {
			hs = append(hs, m)
		}
	}
	return hs
}

func TestGeoFilterMapping(t *testing.T) {
	out, ws := mustAdapt(t, rlHead+`
filters {
    filter "eu-only" {
        type "geo"
        database-path "/var/lib/GeoIP/GeoLite2-Country.mmdb"
        database-type "maxmind"
        action "allow"
        countries "DE,fr, nl" "be"
        on-failure "closed"
        status-code 451
        block-message "Not available in your region"
        add-country-header #false
        cache-ttl-secs 600
    }
    filter "defaults" { type "geo"; database-path "geo.mmdb"; countries "CN"; }
    filter "watch" { type "geo"; database-path "geo.mmdb"; action "log-only"; }
}
routes {
    route "r" { upstream "u"; filters "eu-only" "defaults" "watch"; }
}
`)
	hs := geoHandlers(t, out, "a", 0)
	if len(hs) != 3 {
		t.Fatalf("%d sentinel_geo handlers, want 3", len(hs))
	}
	for i, want := range []string{
		`{"action":"allow","countries":["DE","FR","NL","BE"],"country_header":false,"database":"/var/lib/GeoIP/GeoLite2-Country.mmdb","handler":"sentinel_geo","message":"Not available in your region","name":"eu-only","on_failure":"closed","status_code":451}`,
		`{"countries":["CN"],"database":"geo.mmdb","handler":"sentinel_geo","name":"defaults"}`,
		`{"action":"log_only","database":"geo.mmdb","handler":"sentinel_geo","name":"watch"}`,
	} {
		if got := jsonOf(hs[i]); got != want {
			t.Errorf("handler %d:\n got  %s\n want %s", i, got, want)
		}
	}
	if got := warningsText(ws); !strings.Contains(got, "cache-ttl-secs") || !strings.Contains(got, "lookups are not cached") {
		t.Errorf("warnings: %s", got)
	}
}

func TestGeoFilterErrors(t *testing.T) {
	const f = `filters { filter "f" { type "geo"; `
	const db = `database-path "g.mmdb"; `
	for _, tc := range []struct {
		src, at, want string // at: the text the error points to
	}{
		{f + db + `countries "US,UK"; } }`, `"US,UK"`, `countries: "UK" is not an ISO 3166-1 alpha-2 country code (did you mean "GB"?)`},
		{f + db + `countries "US" "USA"; } }`, `"USA"`, `countries: "USA" is not an ISO 3166-1 alpha-2 country code (two letters, e.g. "US")`},
		{f + db + `countries "XX"; } }`, `"XX"`, `countries: "XX" is not an ISO 3166-1 alpha-2 country code`},
		{f + db + `countries 1; } }`, `1;`, `countries takes strings of country codes ("US,CN"), not`},
		{f + db + `countries ","; } }`, `countries`, `countries needs at least one country code`},
		{f + db + `countries "CN"; action "deny"; } }`, `"deny"`, `action "deny" is not one of block, allow, log-only`},
		{f + db + `countries "CN"; on-failure "half"; } }`, `"half"`, `on-failure "half" is not one of open, closed`},
		{f + db + `countries "CN"; status-code 200; } }`, `200`, `status-code`},
		{f + db + `countries "CN"; database-type "ip2location"; } }`, `"ip2location"`, `database-type "ip2location": IP2Location databases are not supported`},
		{f + db + `countries "CN"; database-type "geolite"; } }`, `"geolite"`, `database-type "geolite" is not one of maxmind, ip2location`},
		{f + `database-path "IP2LOCATION-LITE-DB1.BIN"; countries "CN"; } }`, `"IP2LOCATION`, `filter "f": database-path "IP2LOCATION-LITE-DB1.BIN" looks like an IP2Location database`},
		{f + `countries "CN"; } }`, `filter "f"`, `filter "f": type "geo" needs database-path`},
		{f + db + `} }`, `filter "f"`, `filter "f": action "block" needs countries`},
		{f + db + `action "allow"; } }`, `filter "f"`, `filter "f": action "allow" needs countries`},
		{f + db + `countries "CN"; contries "US"; } }`, `contries`, `unknown setting "contries" in filters.filter[geo] (did you mean "countries"?)`},
	} {
		line, col := 4, strings.Index(tc.src, tc.at)+1
		want := fmt.Sprintf("test.kdl:%d:%d: %s", line, col, tc.want)
		_, _, err := adaptString(t, rlHead+tc.src+"\nroutes { route \"r\" { upstream \"u\"; filters \"f\"; } }\n")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got  %v\n want %q", tc.src, err, want)
		}
	}
}
