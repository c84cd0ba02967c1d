package translate

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	_ "github.com/sentinel-proxy/sentinel/gateway/l4"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestFailedGatewayLoadsNeverTouchTheRunningConfig: the translated
// config of a Gateway with only an HTTP listener has an empty
// sentinel_l4 app, which checks the listen addresses when the config
// replaces a running one. While clients send requests to the running
// config without pause, the translation of the same Gateway with a second
// listener on an address the test holds fails to load twenty times,
// naming the address, and every request is answered by the running
// config's backend. Without the check, Caddy's http app started the new
// config's server on the running config's (shared SO_REUSEPORT) address
// before failing on the taken one in about half the loads, and the
// connections it took were reset when the load was rolled back.
func TestFailedGatewayLoadsNeverTouchTheRunningConfig(t *testing.T) {
	testutil.Exclusive(t)
	in := base()
	echoBackend(t, in, "gw", "local")
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)}})}
	url := serve(t, in)
	var apps struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Config, &apps); err != nil {
		t.Fatal(err)
	}
	if got := string(apps.Apps["sentinel_l4"]); got != "{}" {
		t.Fatalf("the sentinel_l4 app of a Gateway without layer-4 listeners: %q, want {}", got)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	extra := in.Gateway.Spec.Listeners[0]
	extra.Name, extra.Port = "extra", gwv1.PortNumber(taken.Addr().(*net.TCPAddr).Port)
	in.Gateway.Spec.Listeners = append(in.Gateway.Spec.Listeners, extra)
	outB, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}

	clients := testutil.NewSteadyClients(t)
	for range 4 {
		clients.Add(func() string { return testutil.HTTPAnswer(url + "/") }, testutil.Equals("200 local"))
	}
	want := "listening on " + taken.Addr().String()
	for i := range 20 {
		if err := caddy.Load(outB.Config, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load %d of the config with the taken listener: %v, want an error with %q", i, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	clients.Check(t, "20 failed loads", 20)
}
