package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// env is the package's control plane, with the operator's CRDs.
var env *kubetest.Env

func TestMain(m *testing.M) {
	kubetest.Main(m, &env, filepath.Join("..", "..", "deploy", "operator", "crds"))
}

// kube returns an admin client that knows the operator's types.
func kube(t *testing.T) client.Client {
	t.Helper()
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespace creates a namespace for one test.
func namespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// operator runs one operator instance until the test ends or stop is
// called; stop waits until it has stopped.
func operator(t *testing.T, o Options) (stop func()) {
	stop, _ = operatorMgr(t, o)
	return stop
}

// operatorMgr is operator, returning the manager too.
func operatorMgr(t *testing.T, o Options) (func(), ctrl.Manager) {
	t.Helper()
	o.SeveralInProcess = true
	mgr, err := NewManager(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("operator: %v", err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop, mgr
}

func eventually(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestCELRejectsInvalidSpecs: the CRD's validation, run by the real API
// server, refuses bad SentinelUpstreams with messages that say what to
// do.
func TestCELRejectsInvalidSpecs(t *testing.T) {
	kubetest.Need(t, env)
	c := kube(t)
	namespace(t, c, "cel")
	ctx := context.Background()
	up := func(name string, spec v1alpha1.SentinelUpstreamSpec) *v1alpha1.SentinelUpstream {
		spec.ProxyRef.Name = "edge"
		return &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "cel"}, Spec: spec}
	}
	for _, c2 := range []struct {
		u    *v1alpha1.SentinelUpstream
		want string
	}{
		{up("both", v1alpha1.SentinelUpstreamSpec{Targets: []v1alpha1.Target{{Address: "10.0.0.1:80"}}, Service: &v1alpha1.ServiceTargets{Name: "web", Port: ptr.To[int32](80)}}), "give exactly one of targets (static) or service (from its EndpointSlices)"},
		{up("none", v1alpha1.SentinelUpstreamSpec{}), "give exactly one of targets (static) or service (from its EndpointSlices)"},
		{up("port", v1alpha1.SentinelUpstreamSpec{Service: &v1alpha1.ServiceTargets{Name: "web"}}), "give exactly one of port (a number) or portName"},
		{up("addr", v1alpha1.SentinelUpstreamSpec{Targets: []v1alpha1.Target{{Address: "http://10.0.0.1"}}}), "address must be host:port, e.g. 10.0.0.1:8080 or [fd00::1]:8080"},
		{up("weight", v1alpha1.SentinelUpstreamSpec{Targets: []v1alpha1.Target{{Address: "10.0.0.1:80", Weight: 2 << 20}}}), "spec.targets[0].weight: Invalid value"},
	} {
		err := c.Create(ctx, c2.u)
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("%s: %v, want Invalid with %q", c2.u.Name, err, c2.want)
		}
	}
	// upstreamID cannot change once set.
	u := up("id", v1alpha1.SentinelUpstreamSpec{UpstreamID: "web", Targets: []v1alpha1.Target{{Address: "web-0.web:8080"}}})
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	u.Spec.UpstreamID = "other"
	if err := c.Update(ctx, u); err == nil || !strings.Contains(err.Error(), "upstreamID cannot change: create another SentinelUpstream") {
		t.Errorf("changing upstreamID: %v", err)
	}
}

// replica is one built Sentinel process of the proxy "edge".
type replica struct {
	*testutil.Process
	t           *testing.T
	listen, api string
}

// call makes a control-API request and returns the status and body.
func (r *replica) call(method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+r.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t0k")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (r *replica) get(c *http.Client) string {
	res, err := c.Get("http://" + r.listen + "/")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Sprint(res.StatusCode)
	}
	return string(b)
}

// startReplicas runs n Sentinel processes whose fleet store is the
// ConfigMap ns/edge-state, reached with kubeconfig; upstream "web" is
// declared with a dead target.
func startReplicas(t *testing.T, n int, ns, kubeconfig string) []*replica {
	t.Helper()
	bin := testutil.Build(t, "./cmd/sentinel")
	out := make([]*replica, n)
	for i := range out {
		dir := t.TempDir()
		r := &replica{t: t, listen: testutil.FreeAddr(t), api: testutil.FreeAddr(t)}
		config := filepath.Join(dir, "sentinel.kdl")
		os.WriteFile(config, []byte(`system { }
listeners { listener "main" { address "`+r.listen+`"; }; }
routes { route "r" { upstream "web"; }; }
upstreams { upstream "web" { target "127.0.0.1:1"; }; upstream "other" { target "10.0.0.1:80"; }; }
admin-api {
    address "`+r.api+`"
    auth { token "t0k"; }
    allowed-target-networks "10.0.0.0/8"
    fleet { kubernetes { name "edge-state"; namespace "`+ns+`"; kubeconfig "`+kubeconfig+`"; }; }
}
`), 0o644)
		r.Process = testutil.NewProcess(t, "replica "+r.listen,
			append(os.Environ(), "CADDY_ADMIN="+testutil.FreeAddr(t), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir),
			bin, "run", "--config", config)
		r.Start()
		out[i] = r
	}
	return out
}

// replicaUser makes the replicas' user: get, watch and update on the one
// state ConfigMap (deploy/operator/replica-rbac.yaml's rule).
func replicaUser(t *testing.T, c client.Client, ns string) string {
	t.Helper()
	ctx := context.Background()
	user := "sentinel-" + ns
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel-state", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"edge-state"}, Verbs: []string{"get", "watch", "update"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
		},
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel-state", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sentinel-state"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	for _, o := range []client.Object{role, rb} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return env.Kubeconfig(t, t.TempDir(), user)
}

// endpointAddress returns the address EndpointSlices can point at this
// machine with: the API server refuses loopback addresses, so a global
// unicast IP of the machine's when it has one (IPv4), else the FQDN
// localhost.
func endpointAddress(t *testing.T) (discoveryv1.AddressType, string) {
	// EndpointSlices refuse loopback addresses (127.0.0.0/8) and one-label
	// names; tests listen on the loopback interface only: an address of
	// another range given to it (.ci/run adds 10.77.0.1/32).
	if lo, err := net.InterfaceByName("lo"); err == nil {
		addrs, _ := lo.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return discoveryv1.AddressTypeIPv4, n.IP.String()
			}
		}
	}
	testutil.Missing(t, "no IPv4 address outside 127.0.0.0/8 on the loopback interface for the EndpointSlices (they refuse loopback): ip addr add 10.77.0.1/32 dev lo (as .ci/run does)")
	return "", ""
}

// backend serves name on host (an IP of this machine).
func backend(t *testing.T, host, name string) (port int32) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	var p int32
	fmt.Sscanf(s.URL[strings.LastIndex(s.URL, ":")+1:], "%d", &p)
	return p
}

// TestEndpointSliceChangesReachEveryReplica: three real Sentinel
// processes share the ConfigMap the operator writes. A SentinelUpstream
// taking its targets from a Service's EndpointSlices is routed by all; an
// EndpointSlice change is routed by all within 2 s; the operator
// restarted while the slice changed converges; two operators with leader
// election, the leader killed without releasing its Lease, the other
// takes over; deleting the SentinelUpstream takes the upstream out of
// the state (the finalizer) and the replicas route by their
// configuration again.
func TestEndpointSliceChangesReachEveryReplica(t *testing.T) {
	kubetest.Need(t, env)
	c := kube(t)
	const ns = "fleet"
	namespace(t, c, ns)
	ctx := context.Background()
	addrType, host := endpointAddress(t)
	t.Logf("EndpointSlices point at %s (%s)", host, addrType)
	ports := map[string]int32{}
	for _, n := range []string{"A", "B", "C"} {
		ports[n] = backend(t, host, n)
	}
	replicas := startReplicas(t, 3, ns, replicaUser(t, c, ns))
	stop := operator(t, Options{Namespaces: []string{ns}})

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: addrType,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(ports["A"])}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
		},
	}
	up := &v1alpha1.SentinelUpstream{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       v1alpha1.SentinelUpstreamSpec{ProxyRef: v1alpha1.ProxyReference{Name: "edge"}, Service: &v1alpha1.ServiceTargets{Name: "web", PortName: ptr.To("http")}},
	}
	for _, o := range []client.Object{svc, slice, up} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	allRoute := func(want string, limit time.Duration) time.Duration {
		t.Helper()
		return eventually(t, limit, "every replica routes to "+want, func() bool {
			for _, r := range replicas {
				if r.get(hc) != want {
					return false
				}
			}
			return true
		})
	}
	t.Logf("SentinelUpstream created: routed by all replicas after %v", allRoute("A", 30*time.Second))

	// Status, finalizer and Event.
	eventually(t, 5*time.Second, "status Ready=True Applied at the current generation", func() bool {
		if err := c.Get(ctx, client.ObjectKeyFromObject(up), up); err != nil {
			return false
		}
		r := meta.FindStatusCondition(up.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionTrue && r.Reason == "Applied" && r.ObservedGeneration == up.Generation &&
			up.Status.ObservedGeneration == up.Generation && up.Status.Targets == 1 && up.Status.StateRevision != ""
	})
	if !meta.IsStatusConditionFalse(up.Status.Conditions, v1alpha1.ConditionDegraded) || !meta.IsStatusConditionFalse(up.Status.Conditions, v1alpha1.ConditionProgressing) {
		t.Errorf("conditions %+v", up.Status.Conditions)
	}
	if len(up.Finalizers) != 1 || up.Finalizers[0] != v1alpha1.Finalizer {
		t.Errorf("finalizers %v", up.Finalizers)
	}
	eventually(t, 5*time.Second, "an Applied Event on the SentinelUpstream", func() bool {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "web" && e.Reason == "Applied" && e.Type == corev1.EventTypeNormal {
				return true
			}
		}
		return false
	})

	// EndpointSlice changes: measured from the API server's answer to
	// every replica routing by the change.
	var worst time.Duration
	for _, to := range []string{"B", "C", "A", "B", "C"} {
		slice.Ports[0].Port = ptr.To(ports[to])
		if err := c.Update(ctx, slice); err != nil {
			t.Fatal(err)
		}
		took := allRoute(to, 2*time.Second)
		worst = max(worst, took)
		t.Logf("EndpointSlice port → backend %s: routed by all 3 replicas after %v", to, took)
	}
	t.Logf("worst of 5 EndpointSlice changes: %v (target 2s)", worst)

	// The endpoint not ready: no target, the proxy answers 503, the
	// status says why.
	slice.Endpoints[0].Conditions.Ready = ptr.To(false)
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	allRoute("503", 2*time.Second)
	eventually(t, 5*time.Second, "status NoReadyEndpoints", func() bool {
		c.Get(ctx, client.ObjectKeyFromObject(up), up)
		r := meta.FindStatusCondition(up.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == "NoReadyEndpoints" && meta.IsStatusConditionTrue(up.Status.Conditions, v1alpha1.ConditionDegraded)
	})

	// The operator down while the slice changes: restarted, it converges.
	stop()
	slice.Endpoints[0].Conditions.Ready = ptr.To(true)
	slice.Ports[0].Port = ptr.To(ports["A"])
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := replicas[0].get(hc); got != "503" {
		t.Fatalf("with the operator down the replicas changed: %q", got)
	}
	operator(t, Options{Namespaces: []string{ns}})
	t.Logf("operator restarted: routed by all after %v", allRoute("A", 15*time.Second))

	// A replica that restarts starts from the state, including a change
	// made while it was down.
	replicas[2].Stop()
	slice.Ports[0].Port = ptr.To(ports["B"])
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	allRoute2 := func(want string) bool {
		for _, r := range replicas[:2] {
			if r.get(hc) != want {
				return false
			}
		}
		return true
	}
	eventually(t, 2*time.Second, "the running replicas route to B", func() bool { return allRoute2("B") })
	replicas[2].Start()
	t.Logf("a replica restarted after a change made while it was down: routed by it after %v", eventually(t, 30*time.Second, "the restarted replica routes to B", func() bool { return replicas[2].get(hc) == "B" }))
	slice.Ports[0].Port = ptr.To(ports["A"])
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	allRoute("A", 2*time.Second)

	// A change made through one replica's control API reaches the others
	// through the same ConfigMap, without a reload.
	if code, body := replicas[0].call("PUT", "/api/v1/upstreams/other/targets", `{"targets":[{"address":"10.0.0.2:80"}]}`); code != 200 {
		t.Fatalf("PUT targets on replica 0: %d %s", code, body)
	}
	took := eventually(t, 2*time.Second, "replicas 1 and 2 see the change made on replica 0", func() bool {
		for _, r := range replicas[1:] {
			if _, body := r.call("GET", "/api/v1/upstreams/other", ""); !strings.Contains(body, "10.0.0.2:80") {
				return false
			}
		}
		return true
	})
	t.Logf("a change made through replica 0's /api/v1 seen by the others after %v", took)
	if got := replicas[1].get(hc); got != "A" {
		t.Fatalf("the operator's upstream after an API change to another: %q", got)
	}

	// Deleting the SentinelUpstream: the finalizer takes it out of the
	// state, the replicas route by their configuration (a dead target).
	if err := c.Delete(ctx, up); err != nil {
		t.Fatal(err)
	}
	allRoute("502", 5*time.Second)
	eventually(t, 5*time.Second, "the SentinelUpstream is gone", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(up), up))
	})
	var cm corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge-state"}, &cm); err != nil || strings.Contains(cm.Data[StateKey], `"web"`) {
		t.Fatalf("state after delete: %v %s", err, cm.Data[StateKey])
	}
}
