package controller

import (
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	"github.com/sentinel-proxy/sentinel/registry"
)

// kubetestNeed skips (fails under CI) without a control plane.
func kubetestNeed(t *testing.T) { t.Helper(); kubetest.Need(t, env) }

func TestEndpoints(t *testing.T) {
	sl := func(typ discoveryv1.AddressType, port int32, name string, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{AddressType: typ, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}, Endpoints: eps}
	}
	ep := func(ready, serving, terminating *bool, addrs ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
	}
	yes, no := ptr.To(true), ptr.To(false)
	items := []discoveryv1.EndpointSlice{
		sl(discoveryv1.AddressTypeIPv4, 8080, "http", ep(yes, nil, nil, "10.0.0.2"), ep(nil, nil, nil, "10.0.0.1"), ep(no, yes, yes, "10.0.0.3"), ep(no, no, yes, "10.0.0.4")),
		sl(discoveryv1.AddressTypeIPv6, 8080, "http", ep(yes, nil, nil, "fd00::1")),
		sl(discoveryv1.AddressTypeFQDN, 8080, "http", ep(yes, nil, nil, "web-0.web.ns.svc")),
		sl(discoveryv1.AddressTypeIPv4, 9090, "metrics", ep(yes, nil, nil, "10.0.0.9")),
		// The same endpoint in two slices (during a move): listed once, active wins.
		sl(discoveryv1.AddressTypeIPv4, 8080, "http", ep(no, yes, yes, "10.0.0.2")),
	}
	got := endpoints(items, &v1alpha1.ServiceTargets{PortName: ptr.To("http"), Weight: 2})
	var out []string
	for _, tg := range got {
		if tg.Weight != 2 || tg.Origin != registry.OriginAPI {
			t.Errorf("%+v", tg)
		}
		out = append(out, tg.Address+"="+string(tg.State))
	}
	want := "10.0.0.1:8080=active 10.0.0.2:8080=active 10.0.0.3:8080=draining [fd00::1]:8080=active web-0.web.ns.svc:8080=active"
	if strings.Join(out, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(out, " "), want)
	}
	if got := endpoints(items, &v1alpha1.ServiceTargets{Port: ptr.To[int32](9090)}); len(got) != 1 || got[0].Address != "10.0.0.9:9090" || got[0].Weight != 1 {
		t.Fatalf("by port number: %+v", got)
	}
}

func TestStateEdits(t *testing.T) {
	now := time.UnixMilli(1000)
	s, err := parseState(nil)
	if err != nil {
		t.Fatal(err)
	}
	tg := []registry.Target{target("a:1", 1, registry.StateActive)}
	if !s.set("u", tg, now) || s.set("u", tg, now) {
		t.Fatal("set: changed the first time only")
	}
	if s.Upstreams[0].Version != 1000 || !s.set("u", []registry.Target{target("b:1", 1, registry.StateActive)}, now) || s.Upstreams[0].Version != 1001 {
		t.Fatalf("versions grow: %+v", s.Upstreams)
	}
	data, err := s.encode()
	if err != nil {
		t.Fatal(err)
	}
	// The registry accepts what the operator writes.
	r := registry.New()
	r.Reconcile([]registry.UpstreamSpec{{ID: "u", Targets: []registry.TargetSpec{{Address: "cfg:1"}}}}, nil)
	if err := r.Restore(data); err != nil {
		t.Fatal(err)
	}
	if u, _ := r.Get("u"); len(u.Targets) != 1 || u.Targets[0].Address != "b:1" || u.Version != 1001 {
		t.Fatalf("registry: %+v", u)
	}
	if !s.remove("u") || s.remove("u") {
		t.Fatal("remove: changed the first time only")
	}
	for data, want := range map[string]string{
		"garbage":                      "not a Sentinel state",
		`{"version":2,"upstreams":[]}`: "format version 2",
		`{"version":1,"other":1}`:      "unknown field",
	} {
		if _, err := parseState([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", data, err, want)
		}
	}
}
