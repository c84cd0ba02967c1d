package translate

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// headerBackend answers its name and the request headers Backend,
// X-Add, X-Drop and the unset slot header it received.
func headerBackend(t *testing.T, in *Input, ns, name string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s backend=%q add=%q drop=%q unset=%q", name, r.Header.Get("Backend"), r.Header.Values("X-Add"), r.Header.Get("X-Drop"), r.Header.Get(unsetHeader))
	}))
	t.Cleanup(srv.Close)
	host, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	port32, pname, ready := int32(port), "http", true
	key := types.NamespacedName{Namespace: ns, Name: name}
	in.Services[key] = in.Services[types.NamespacedName{Namespace: "gw", Name: "local"}].DeepCopy()
	in.Services[key].Namespace, in.Services[key].Name = ns, name
	in.EndpointSlices[key] = []*discoveryv1.EndpointSlice{{
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:     []discoveryv1.EndpointPort{{Name: &pname, Port: &port32}},
	}}
}

// TestBackendFilters: the header filters of a backendRef apply to the
// requests sent to that backend only (and to its responses), through a
// real Caddy and real backends; the slot header never leaks; a backend
// filter of another type is UnsupportedValue.
func TestBackendFilters(t *testing.T) {
	in := base()
	for _, n := range []string{"v1", "v2", "v3"} {
		headerBackend(t, in, "gw", n)
	}
	bref := func(name string, filters ...gwv1.HTTPRouteFilter) gwv1.HTTPBackendRef {
		r := ref("", name, 8080)
		r.Filters = filters
		return r
	}
	reqSet := func(name, value string, add ...string) gwv1.HTTPRouteFilter {
		f := &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: gwv1.HTTPHeaderName(name), Value: value}}, Remove: []string{"X-Drop"}}
		for _, a := range add {
			f.Add = append(f.Add, gwv1.HTTPHeader{Name: "X-Add", Value: a})
		}
		return gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: f}
	}
	respSet := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-From", Value: "v1"}}}}
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{
		BackendRefs: []gwv1.HTTPBackendRef{bref("v1", reqSet("Backend", "v1", "a", "b"), respSet), bref("v2", reqSet("Backend", "v2")), bref("v3")},
	})}
	url := serve(t, in)
	want := map[string]string{
		"v1": `v1 backend="v1" add=["a, b"] drop="" unset=""`,
		"v2": `v2 backend="v2" add=[] drop="" unset=""`,
		"v3": `v3 backend="" add=[] drop="kept" unset=""`,
	}
	c := &http.Client{Timeout: 10 * time.Second}
	seen := map[string]int{}
	for range 30 {
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.Header.Set("X-Drop", "kept")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := string(b[:2])
		seen[name]++
		if string(b) != want[name] {
			t.Errorf("got %s, want %s", b, want[name])
		}
		if from := resp.Header.Get("X-From"); (name == "v1") != (from == "v1") || resp.Header.Get(unsetHeader) != "" {
			t.Errorf("%s: response X-From %q, unset slot %q", name, from, resp.Header.Get(unsetHeader))
		}
	}
	if seen["v1"] != 10 || seen["v2"] != 10 || seen["v3"] != 10 {
		t.Errorf("split %v, want 10 each", seen)
	}

	in = base()
	bad := ref("", "local", 8080)
	bad.Filters = []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{}}}
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{bad}})}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); got != "Accepted=True/Accepted ResolvedRefs=False/UnsupportedValue" {
		t.Errorf("a URLRewrite backend filter: %s", got)
	}
}
