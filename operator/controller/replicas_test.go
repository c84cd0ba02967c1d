package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestReplicaReload: the outcomes of a replica's reload, against a real
// TLS server answering as a replica would: applied, stale (another
// revision read), refused (422 with the adapter's errors), an answer
// without config_sha256, a wrong token, unreachable; a replica that
// applied a revision is not reloaded again for it.
func TestReplicaReload(t *testing.T) {
	var calls int
	var body string // what the server answers
	answer := func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Header.Get("Authorization") != "Bearer t0k" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"unauthorized"}`)
			return
		}
		io.WriteString(w, body)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(answer))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	auth := Auth{Token: "t0k", TLS: &tls.Config{RootCAs: pool, ServerName: "example.com"}}
	addr := strings.TrimPrefix(srv.URL, "https://")
	rc := &ReplicaClient{}
	proxy := types.NamespacedName{Namespace: "ns", Name: "edge"}
	reps := []Replica{{Address: addr, Pod: "edge-0"}}
	for _, tc := range []struct {
		body, rev, reason, msg string
	}{
		{`{"status":"reloaded","config_sha256":"abcdef0123456789ffff"}`, "0000000000000000", ReasonStale, "reloaded revision abcdef0123456789: its mounted ConfigMap is not updated yet"},
		{`{"status":"reloaded"}`, "abcdef0123456789", ReasonReloadFailed, "no config_sha256"},
		{"422", "abcdef0123456789", ReasonReloadFailed, `reload answered 422: 2 errors; a.kdl:1:1: bad; a.kdl:2:1: worse`},
		{`{"status":"reloaded","config_sha256":"abcdef0123456789ffff"}`, "abcdef0123456789", "", ""},
	} {
		body = tc.body
		if tc.body == "422" {
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusUnprocessableEntity)
				io.WriteString(w, `{"error":"2 errors","errors":["a.kdl:1:1: bad","a.kdl:2:1: worse"]}`)
			})
		} else {
			srv.Config.Handler = http.HandlerFunc(answer)
		}
		res := rc.Reload(context.Background(), proxy, reps, auth, tc.rev)
		if res[0].Reason != tc.reason || !strings.Contains(res[0].Message, tc.msg) || res[0].Pod != "edge-0" {
			t.Errorf("%s: %+v, want %s %q", tc.body, res[0], tc.reason, tc.msg)
		}
	}
	// Applied: not reloaded again for the same revision.
	calls = 0
	if res := rc.Reload(context.Background(), proxy, reps, auth, "abcdef0123456789"); res[0].Reason != "" || calls != 0 {
		t.Errorf("reloaded again: %+v, %d calls", res[0], calls)
	}
	// Forgotten (the proxy deleted): reloaded again.
	rc.Forget(proxy)
	if res := rc.Reload(context.Background(), proxy, reps, auth, "abcdef0123456789"); res[0].Reason != "" || calls != 1 {
		t.Errorf("after Forget: %+v, %d calls", res[0], calls)
	}
	// A wrong token; a certificate for another name; nobody listening.
	if res := rc.Reload(context.Background(), proxy, reps, Auth{Token: "bad", TLS: auth.TLS}, "1111111111111111"); res[0].Reason != ReasonReloadFailed || !strings.Contains(res[0].Message, "401: unauthorized") {
		t.Errorf("bad token: %+v", res[0])
	}
	other := auth.TLS.Clone()
	other.ServerName = "edge-ops.ns.svc"
	if res := rc.Reload(context.Background(), proxy, reps, Auth{Token: "t0k", TLS: other}, "1111111111111111"); res[0].Reason != ReasonUnreachable || !strings.Contains(res[0].Message, "certificate") {
		t.Errorf("wrong certificate name: %+v", res[0])
	}
	srv.Close()
	if res := rc.Reload(context.Background(), proxy, reps, auth, "2222222222222222"); res[0].Reason != ReasonUnreachable {
		t.Errorf("closed: %+v", res[0])
	}
	if got := notUpdated([]ReplicaResult{{Replica: reps[0], Reason: ReasonStale, Message: "m"}, {Replica: Replica{Address: "b"}}}); len(got) != 1 || got[0].Pod != "edge-0" {
		t.Errorf("notUpdated %+v", got)
	}
	if truncate(strings.Repeat("x", 600), 512) != strings.Repeat("x", 512)+"…" || truncate("x", 2) != "x" {
		t.Error("truncate")
	}
}

// TestAdminEndpoints: the replicas are the ops Service's endpoints on
// the admin-api port, terminating ones left out, each address once.
func TestAdminEndpoints(t *testing.T) {
	slices := []discoveryv1.EndpointSlice{
		{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("ops"), Port: ptr.To[int32](9090)}, {Name: ptr.To("admin-api"), Port: ptr.To[int32](9901)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.2"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "edge-b"}},
				{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
				{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Terminating: ptr.To(true)}},
				{Addresses: []string{"fd00::1"}},
			}},
		{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("ops"), Port: ptr.To[int32](9090)}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}}}},
		{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("admin-api"), Port: ptr.To[int32](9901)}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.2"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "edge-b"}}}},
	}
	got := adminEndpoints(slices)
	want := []Replica{{Address: "10.0.0.1:9901"}, {Address: "10.0.0.2:9901", Pod: "edge-b"}, {Address: "[fd00::1]:9901"}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
