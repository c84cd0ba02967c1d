package kdladapter

import (
	"strings"
	"testing"
)

// TestListenerTrustedProxiesAndHeaderTimeout maps trusted-proxies and the
// header timeouts, and names bad values with their listener.
func TestListenerTrustedProxiesAndHeaderTimeout(t *testing.T) {
	const routes = "\nroutes { route \"r\" { builtin-handler \"status\"; } }\n"
	out, _ := mustAdapt(t, `system { }
listeners {
    listener "a" {
        address "127.0.0.1:8080"
        trusted-proxies "10.0.0.0/8" "192.0.2.7" "private_ranges"
        request-timeout-secs 3
    }
    listener "b" {
        address "127.0.0.1:8081"
        header-timeout-secs 4
    }
}`+routes)
	for _, want := range []string{
		`"trusted_proxies":{"ranges":["10.0.0.0/8","192.0.2.7","private_ranges"],"source":"static"}`,
		`"trusted_proxies_strict":1`,
		`"read_header_timeout":"3s"`, `"read_timeout":"3s"`,
		`"read_header_timeout":"4s"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
	_, ws := mustAdapt(t, `system { }
listeners { listener "c" { address "127.0.0.1:8082"; request-timeout-secs 2; header-timeout-secs 5; } }`+routes)
	if !strings.Contains(warningsText(ws), "header-timeout-secs 5 is above request-timeout-secs") {
		t.Errorf("no warning: %s", warningsText(ws))
	}
	for src, want := range map[string]string{
		`trusted-proxies "10.0.0.0/33"`: `listener "x": trusted-proxies "10.0.0.0/33" is not an IP address or CIDR range`,
		`trusted-proxies 10`:            `listener "x": trusted-proxies takes IP addresses or CIDR ranges as strings`,
		`trusted-proxies`:               `listener "x": trusted-proxies needs at least one address or range`,
		`header-timeout-secs 0`:         `header-timeout-secs`,
	} {
		_, _, err := adaptString(t, `system { }
listeners { listener "x" { address "127.0.0.1:8083"; `+src+`; } }`+routes)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}
