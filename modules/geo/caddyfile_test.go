package geo

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var h Handler
	d := caddyfile.NewTestDispenser(`sentinel_geo {
		database /var/lib/geo.mmdb
		action allow
		countries de FR
		countries NL
		on_failure closed
		status_code 451
		message "not here"
		country_header false
		name eu
		reload_interval 5m
	}`)
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	no := false
	want := Handler{Database: "/var/lib/geo.mmdb", Action: "allow", Countries: []string{"de", "FR", "NL"}, OnFailure: "closed",
		StatusCode: 451, Message: "not here", CountryHeader: &no, Name: "eu", ReloadInterval: caddy.Duration(5 * time.Minute)}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v\nwant %+v", h, want)
	}

	for src, want := range map[string]string{
		"sentinel_geo a":                          "wrong argument count",
		"sentinel_geo {\ncountries\n}":            "wrong argument count",
		"sentinel_geo {\ncountries US UK\n}":      `countries: "UK" is not an ISO 3166-1 alpha-2 country code`,
		"sentinel_geo {\naction\n}":               "wrong argument count",
		"sentinel_geo {\nstatus_code x\n}":        `status_code "x": not a number`,
		"sentinel_geo {\ncountry_header maybe\n}": `country_header "maybe": expected true or false`,
		"sentinel_geo {\nreload_interval soon\n}": `reload_interval "soon"`,
		"sentinel_geo {\ncolour red\n}":           `unknown sentinel_geo setting "colour"`,
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}
