package translate

import (
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestFQDNEndpointSlicesAreNotDialed: an EndpointSlice of addressType
// FQDN, which whoever may create EndpointSlices in a route's namespace can
// label with a Service's name, is not a backend: the API server checks
// the IP addresses of slices (no loopback, link-local or unspecified
// address) but not the names, so "metadata.google.internal" or a name
// resolving to 127.0.0.1 would make the Gateway's replicas dial the cloud
// metadata service or their own loopback. Only IP slices are used (as
// kube-proxy does), HTTP and layer-4 routes alike; an address that is not
// an IP literal (a name in an IP slice, a zoned address) is skipped too.
func TestFQDNEndpointSlicesAreNotDialed(t *testing.T) {
	in := base()
	name, port := "http", int32(3000)
	key := types.NamespacedName{Namespace: "app", Name: "web"}
	in.EndpointSlices[key] = append(in.EndpointSlices[key],
		&discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeFQDN,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"metadata.google.internal"}}},
			Ports:     []discoveryv1.EndpointPort{{Name: &name, Port: &port}}},
		&discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"localtest.me"}}, {Addresses: []string{"fe80::1%eth0"}}},
			Ports:     []discoveryv1.EndpointPort{{Name: &name, Port: &port}}})
	in.Routes = []*gwv1.HTTPRoute{route("app", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("", "web", 8080)}})}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(out.Config)
	if !strings.Contains(cfg, `"dial":"10.0.0.1:3000"`) {
		t.Errorf("config lacks the IP endpoint: %s", cfg)
	}
	for _, bad := range []string{"metadata.google.internal", "localtest.me", "fe80::1"} {
		if strings.Contains(cfg, bad) {
			t.Errorf("config dials %s: %s", bad, cfg)
		}
	}
}
