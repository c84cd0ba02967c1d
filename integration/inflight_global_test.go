package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestGlobalInFlightLimit: the global limits' max-in-flight-requests is
// one count over every route and listener: with two requests held on
// route "slow" (listener one), a request to another route on another
// listener is answered 503 with Retry-After: 1 and a JSON body at once;
// once the held requests end, both routes answer again.
func TestGlobalInFlightLimit(t *testing.T) {
	g := startGateBackend(t, "g")
	one, two := testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
limits { max-in-flight-requests 2; }
listeners {
    listener "one" { address "%s"; }
    listener "two" { address "%s"; }
}
upstreams { upstream "g" { target "%s"; }; }
routes {
    route "slow" { matches { path "/slow"; }; upstream "g"; }
    route "other" { matches { path-prefix "/"; }; upstream "g"; }
}
`, one, two, g.addr))
	c := client()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, body, _ := get(t, c, "GET", "http://"+one+"/slow", nil); s != 200 {
				t.Errorf("held request: %d %q", s, body)
			}
		}()
	}
	<-g.entered
	<-g.entered
	for _, url := range []string{"http://" + two + "/fast", "http://" + one + "/fast"} {
		s, body, hdr := get(t, c, "GET", url, nil)
		if s != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" ||
			!strings.Contains(body, `"too many requests in flight for global (at most 2)"`) {
			t.Errorf("%s over the global cap: %d %q %v, want 503", url, s, body, hdr)
		}
	}
	close(g.gate)
	wg.Wait()
	for _, url := range []string{"http://" + two + "/fast", "http://" + one + "/slow"} {
		if s, body, _ := get(t, c, "GET", url, nil); s != 200 {
			t.Errorf("%s after the held requests ended: %d %q", url, s, body)
		}
	}
}
