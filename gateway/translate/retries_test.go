package translate

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// flakyBackend fails the first succeedAfter requests of each id (query
// parameters) with status code, then answers 200; it is the only
// endpoint of Service gw/local.
func flakyBackend(t *testing.T, in *Input) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, _ := strconv.Atoi(q.Get("succeedAfter"))
		code, _ := strconv.Atoi(q.Get("code"))
		mu.Lock()
		n := seen[q.Get("id")]
		seen[q.Get("id")]++
		mu.Unlock()
		if n < after {
			w.WriteHeader(code)
			return
		}
		fmt.Fprintf(w, "ok after %d", n)
	}))
	t.Cleanup(srv.Close)
	host, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	port32, pname, ready := int32(port), "http", true
	in.EndpointSlices[types.NamespacedName{Namespace: "gw", Name: "local"}] = []*discoveryv1.EndpointSlice{{
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:     []discoveryv1.EndpointPort{{Name: &pname, Port: &port32}},
	}}
}

// TestRetries: a rule's retry (codes, attempts, backoff) through a real
// Caddy and a real flaky backend: a status among the codes is retried up
// to attempts times (then the client gets that status), other statuses
// are not, the backoff is waited between attempts, and a POST (its body
// streamed, not kept) is not retried. Bad values: UnsupportedValue.
func TestRetries(t *testing.T) {
	in := base()
	flakyBackend(t, in)
	attempts3, attempts2 := 3, 2
	backoff := gwv1.Duration("100ms")
	rule := func(prefix string, r *gwv1.HTTPRouteRetry) gwv1.HTTPRouteRule {
		return gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, prefix)}},
			Retry:       r,
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
		}
	}
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r",
		rule("/500-3", &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{500}, Attempts: &attempts3}),
		rule("/all-2", &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{500, 502, 503, 504}, Attempts: &attempts2, Backoff: &backoff}),
		rule("/none", nil),
	)}
	url := serve(t, in)
	c := &http.Client{Timeout: 10 * time.Second}
	id := 0
	do := func(method, path string, code, after int) (int, time.Duration) {
		id++
		req, _ := http.NewRequest(method, fmt.Sprintf("%s%s?id=%d&code=%d&succeedAfter=%d", url, path, id, code, after), strings.NewReader(""))
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	for _, tc := range []struct {
		path       string
		code, fail int
		want       int
	}{
		{"/500-3", 500, 2, 200},
		{"/500-3", 500, 3, 200},
		{"/500-3", 500, 4, 500},
		{"/500-3", 503, 2, 503},
		{"/all-2", 502, 1, 200},
		{"/all-2", 504, 2, 200},
		{"/all-2", 503, 3, 503},
		{"/none", 500, 1, 500},
	} {
		if got, _ := do("GET", tc.path, tc.code, tc.fail); got != tc.want {
			t.Errorf("GET %s failing %d times with %d: %d, want %d", tc.path, tc.fail, tc.code, got, tc.want)
		}
	}
	if got, d := do("GET", "/all-2", 500, 2); got != 200 || d < 200*time.Millisecond {
		t.Errorf("two retries with a 100ms backoff: %d after %v, want 200 after 200ms or more", got, d)
	}
	if got, _ := do("POST", "/500-3", 500, 1); got != 500 {
		t.Errorf("POST: %d, want 500 (not retried)", got)
	}

	bad := gwv1.Duration("soon")
	in = base()
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r",
		rule("/a", &gwv1.HTTPRouteRetry{Backoff: &bad}),
		rule("/b", &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{200}}),
	)}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); got != "Accepted=True/Accepted ResolvedRefs=False/UnsupportedValue" {
		t.Errorf("bad retry values: %s", got)
	}
}
