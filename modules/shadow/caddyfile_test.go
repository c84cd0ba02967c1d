package shadow_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/shadow"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`sentinel_shadow canary {
		route api
		percentage 12.5
		sample_header X-Canary yes
		timeout 750ms
		buffer_body
		max_body_bytes 2048
		max_in_flight 3
	}`)
	var h shadow.Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if h.Upstream != "canary" || h.Route != "api" || h.Percentage == nil || *h.Percentage != 12.5 ||
		h.SampleHeader == nil || *h.SampleHeader != (shadow.SampleHeader{Name: "X-Canary", Value: "yes"}) ||
		h.Timeout != caddy.Duration(750*time.Millisecond) || !h.BufferBody || h.MaxBodyBytes != 2048 || h.MaxInFlight != 3 {
		t.Errorf("parsed %+v", h)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, src := range []string{
		`sentinel_shadow`,
		`sentinel_shadow a b`,
		"sentinel_shadow a {\npercentage ten\n}",
		"sentinel_shadow a {\npercentage\n}",
		"sentinel_shadow a {\nsample_header X-Only\n}",
		"sentinel_shadow a {\ntimeout soon\n}",
		"sentinel_shadow a {\ntimeout\n}",
		"sentinel_shadow a {\nmax_body_bytes 1MB\n}",
		"sentinel_shadow a {\nmax_body_bytes\n}",
		"sentinel_shadow a {\nmax_in_flight many\n}",
		"sentinel_shadow a {\nmax_in_flight\n}",
		"sentinel_shadow a {\nroute\n}",
		"sentinel_shadow a {\nbuffer_body yes\n}",
		"sentinel_shadow a {\nprecentage 5\n}",
	} {
		var h shadow.Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err == nil {
			t.Errorf("%s: no error", src)
		}
	}
}

// TestCaddyfileShadow runs the directive in a Caddyfile site: the copies
// go to the registry's upstream through the default proxy.
func TestCaddyfileShadow(t *testing.T) {
	primary, canary := startBackend(t, nil), startBackend(t, nil)
	listen := testutil.FreeAddr(t)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(fmt.Sprintf(`{
	admin localhost:%d
	auto_https off
	sentinel {
		upstream cf-primary {
			target %s
		}
		upstream cf-canary {
			target %s
		}
	}
}

http://%s {
	sentinel_shadow cf-canary {
		route cf
	}
	reverse_proxy {
		dynamic sentinel cf-primary
	}
}
`, adminPort, primary.addr, canary.addr, listen), "caddyfile")
	res, err := http.Get("http://" + listen + "/from-caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	primary.next(t)
	if cr := canary.next(t); cr.uri != "/from-caddyfile" || cr.header.Get(shadow.MarkerHeader) != "true" || cr.host != canary.addr {
		t.Errorf("copy %s, marker %q, Host %q", cr.uri, cr.header.Get(shadow.MarkerHeader), cr.host)
	}
}
