package integration

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestGuestSelectionPolicies: the KDL adapter's locality_aware fallback
// and deterministic_subset inner policy load as selection policy modules
// and choose the targets: with only remote targets, fallback "random"
// serves and "none" answers 503; the subset's inner policy serves from
// the subset.
func TestGuestSelectionPolicies(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "main" { address %q; protocol "http"; }; }
routes {
    route "rnd" { matches { path-prefix "/rnd"; }; upstream "rnd"; }
    route "none" { matches { path-prefix "/none"; }; upstream "none"; }
    route "sub" { matches { path-prefix "/sub"; }; upstream "sub"; }
}
upstreams {
    upstream "rnd" {
        target "far/%s"
        target "far/%s"
        load-balancing "locality" { zone "near"; fallback "random"; }
    }
    upstream "none" {
        target "far/%s"
        load-balancing "locality" { zone "near"; fallback "none"; }
    }
    upstream "sub" {
        target %q
        target %q
        load-balancing "subset" { subset-size 1; inner "least_connections"; }
    }
}
`, listen, a.addr, b.addr, a.addr, a.addr, b.addr))
	c := &http.Client{}
	for i := range 4 {
		if code, body, _ := get(t, c, "GET", "http://"+listen+"/rnd", nil); code != 200 {
			t.Fatalf("fallback random, request %d: %d %q", i, code, body)
		}
	}
	if code, body, _ := get(t, c, "GET", "http://"+listen+"/none", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("fallback none: %d %q", code, body)
	}
	seen := map[string]bool{}
	for range 6 {
		code, body, h := get(t, c, "GET", "http://"+listen+"/sub", nil)
		if code != 200 {
			t.Fatalf("subset: %d %q", code, body)
		}
		seen[h.Get("X-Backend")] = true
	}
	if len(seen) != 1 {
		t.Fatalf("a subset of 1 served from %v", seen)
	}
}
