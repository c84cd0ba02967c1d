package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	"github.com/sentinel-proxy/sentinel/operator/render"
)

// podReplica is a built Sentinel process running a SentinelProxy's
// rendered sentinel.kdl, as a pod would: the test copies the ConfigMap
// into its file as the kubelet updates a mounted ConfigMap, and the
// environment gives it addresses of its own on this machine.
type podReplica struct {
	*testutil.Process
	listen, admin string
}

// kubelet copies data[sentinel.kdl] of the ConfigMap ns/name into each
// file whenever it changes (every 50 ms), as the kubelet does for a
// mounted ConfigMap (within about a minute in a cluster); it returns
// once the files exist.
func kubelet(t *testing.T, c client.Client, ns, name string, files ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	sync := func() bool {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cm); err != nil {
			return false
		}
		for _, f := range files {
			if old, _ := os.ReadFile(f); string(old) == cm.Data[render.ConfigKey] {
				continue
			}
			tmp := f + ".tmp"
			os.WriteFile(tmp, []byte(cm.Data[render.ConfigKey]), 0o644)
			os.Rename(tmp, f) // atomic, like the kubelet's symlink swap
		}
		return true
	}
	eventually(t, 30*time.Second, "ConfigMap "+name+" made by the operator", sync)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			sync()
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

// startPods runs n replicas of proxy ns/name, each with its ops Service
// EndpointSlice naming its admin-api (on host, outside loopback: the API
// server refuses loopback endpoints).
func startPods(t *testing.T, c client.Client, n int, ns, name, host, token, kubeconfig, tlsDir string) []*podReplica {
	t.Helper()
	bin := testutil.Build(t, "./cmd/sentinel")
	out := make([]*podReplica, n)
	var files []string
	for i := range out {
		dir := t.TempDir()
		files = append(files, filepath.Join(dir, render.ConfigKey))
		out[i] = &podReplica{listen: testutil.FreeAddr(t), admin: testutil.FreeAddrOn(t, host)}
	}
	kubelet(t, c, ns, name+v1alpha1.ConfigSuffix, files...)
	for i, r := range out {
		dir := filepath.Dir(files[i])
		r.Process = testutil.NewProcess(t, "pod "+r.admin, append(os.Environ(),
			"CADDY_ADMIN="+testutil.FreeAddr(t), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir,
			render.ListenerEnv("main")+"="+r.listen, render.EnvOpsAddress+"="+testutil.FreeAddr(t),
			render.EnvAdminAddress+"="+r.admin, render.EnvToken+"="+token, render.EnvKubeconfig+"="+kubeconfig, render.EnvAdminTLSDir+"="+tlsDir,
		), bin, "run", "--config", files[i])
		r.Process.Grace = 3 * time.Second
		r.Start()
		_, port, _ := net.SplitHostPort(r.admin)
		pn, _ := strconv.Atoi(port)
		p := int32(pn)
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-ops-" + string(rune('a'+i)), Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name + v1alpha1.OpsSuffix}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("admin-api"), Port: ptr.To(p)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: name + "-pod-" + string(rune('a'+i)), Namespace: ns}}},
		}
		if err := c.Create(context.Background(), slice); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// get returns the body of GET path on the replica ("" and the error's
// text in failed for a failure: a status other than 200 or a transport
// error).
func (r *podReplica) get(hc *http.Client, path string) (body string, failed string) {
	res, err := hc.Get("http://" + r.listen + path)
	if err != nil {
		return "", err.Error()
	}
	defer res.Body.Close()
	b := new(strings.Builder)
	_, err = io.Copy(b, res.Body)
	if res.StatusCode != http.StatusOK || err != nil {
		return "", res.Status
	}
	return b.String(), ""
}

// TestProxyRoutesAgentsReachReplicas: a SentinelProxy is rendered into
// its objects (owned by it); three real Sentinel processes run its
// sentinel.kdl as its pods would; SentinelRoutes (by name and by label
// selector) and a SentinelAgent created, changed and deleted reach every
// replica through a reload, with zero failed requests under load; a bad
// route is rejected with the adapter's message and the others still
// apply; a stopped replica is reported Unreachable (Degraded) and
// converges when it is back.
func TestProxyRoutesAgentsReachReplicas(t *testing.T) {
	kubetest.Need(t, env)
	c := kube(t)
	const ns = "proxy"
	namespace(t, c, ns)
	ctx := context.Background()
	_, host := endpointAddress(t)
	portA, portB := backend(t, host, "A"), backend(t, host, "B")
	operator(t, Options{Namespaces: []string{ns}, ReplicaTimeout: 2 * time.Second})
	// The admin-api's certificate names the ops Service.
	certPEM, keyPEM, err := testutil.CertPEM("edge-ops.proxy.svc")
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := t.TempDir()
	os.WriteFile(filepath.Join(tlsDir, "tls.crt"), certPEM, 0o600)
	os.WriteFile(filepath.Join(tlsDir, "tls.key"), keyPEM, 0o600)
	adminTLS := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "edge-admin-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": certPEM}}
	if err := c.Create(ctx, adminTLS); err != nil {
		t.Fatal(err)
	}

	p := &v1alpha1.SentinelProxy{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns, Labels: map[string]string{"tier": "edge"}},
		Spec: v1alpha1.SentinelProxySpec{
			Image:          "ghcr.io/sentinel-proxy/sentinel:test",
			Listeners:      []v1alpha1.Listener{{Name: "main", Port: 8080}},
			AdminAPI:       v1alpha1.AdminAPI{TLSSecretName: "edge-admin-tls"},
			Disruption:     &v1alpha1.Disruption{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
			Autoscaling:    &v1alpha1.Autoscaling{MinReplicas: 3, MaxReplicas: 6, TargetCPUUtilizationPercentage: 60},
			ServiceMonitor: &v1alpha1.ServiceMonitor{},
		},
	}
	ups := []*v1alpha1.SentinelUpstream{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: v1alpha1.SentinelUpstreamSpec{ProxyRef: v1alpha1.ProxyReference{Name: "edge"},
			Targets: []v1alpha1.Target{{Address: net.JoinHostPort(host, itoa(portA))}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-b", Namespace: ns}, Spec: v1alpha1.SentinelUpstreamSpec{ProxyRef: v1alpha1.ProxyReference{Name: "edge"},
			Targets: []v1alpha1.Target{{Address: net.JoinHostPort(host, itoa(portB))}}}},
	}
	root := &v1alpha1.SentinelRoute{ObjectMeta: metav1.ObjectMeta{Name: "root", Namespace: ns}, Spec: v1alpha1.SentinelRouteSpec{
		ProxySelection: v1alpha1.ProxySelection{ProxyRef: &v1alpha1.ProxyReference{Name: "edge"}},
		Matches:        v1alpha1.RouteMatch{PathPrefix: "/"}, Upstream: "web",
	}}
	for _, o := range []client.Object{p, ups[0], ups[1], root} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	// The proxy's objects, owned by it.
	owned := func(o client.Object, name string) {
		t.Helper()
		eventually(t, 20*time.Second, "the operator made "+name, func() bool {
			return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, o) == nil
		})
		if !metav1.IsControlledBy(o, p) {
			t.Errorf("%T %s is not owned by the SentinelProxy: %v", o, name, o.GetOwnerReferences())
		}
	}
	var dep appsv1.Deployment
	owned(&dep, "edge")
	// Replicas: the HPA's (the operator does not set them; the API server
	// defaults them).
	if dep.Spec.Template.Spec.ServiceAccountName != "edge-sentinel" || dep.Spec.Template.Spec.Containers[0].Image != p.Spec.Image {
		t.Errorf("Deployment %+v", dep.Spec)
	}
	var svc, ops corev1.Service
	owned(&svc, "edge")
	owned(&ops, "edge-ops")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || len(ops.Spec.Ports) != 2 {
		t.Errorf("Services %v %v", svc.Spec.Ports, ops.Spec.Ports)
	}
	var cm, state corev1.ConfigMap
	owned(&cm, "edge-config")
	owned(&state, "edge-state")
	var sec corev1.Secret
	owned(&sec, "edge-admin")
	token := string(sec.Data["token"])
	if len(token) != 64 {
		t.Errorf("token of %d characters", len(token))
	}
	owned(&corev1.ServiceAccount{}, "edge-sentinel")
	owned(&rbacv1.Role{}, "edge-sentinel")
	owned(&rbacv1.RoleBinding{}, "edge-sentinel")
	owned(&policyv1.PodDisruptionBudget{}, "edge")
	owned(&autoscalingv2.HorizontalPodAutoscaler{}, "edge")

	// The replicas run as the proxy's service account: the Role the
	// operator made is all they have.
	kubeconfig := env.Kubeconfig(t, t.TempDir(), "system:serviceaccount:"+ns+":edge-sentinel")
	pods := startPods(t, c, 3, ns, "edge", host, token, kubeconfig, tlsDir)
	hc := &http.Client{Timeout: 2 * time.Second}
	allRoute := func(path, want string, limit time.Duration) time.Duration {
		t.Helper()
		return eventually(t, limit, "every replica answers "+path+" with "+want, func() bool {
			for _, r := range pods {
				if b, _ := r.get(hc, path); b != want {
					return false
				}
			}
			return true
		})
	}
	t.Logf("replicas started, routing by the SentinelRoute after %v", allRoute("/x", "A", 30*time.Second))
	proxyReady := func(what string, ok func(*v1alpha1.SentinelProxy) bool) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() bool {
			var got v1alpha1.SentinelProxy
			if c.Get(ctx, client.ObjectKeyFromObject(p), &got) != nil {
				return false
			}
			*p = got
			return ok(&got)
		})
	}
	proxyReady("proxy Ready, 3 replicas updated", func(p *v1alpha1.SentinelProxy) bool {
		r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionTrue && r.Reason == "Applied" && p.Status.UpdatedReplicas == 3 && p.Status.Replicas == 3 &&
			p.Status.Routes == 1 && p.Status.Upstreams == 2 && p.Status.ObservedGeneration == p.Generation
	})

	// Load on every replica while routes change: no request may fail.
	var sent, failures atomic.Int64
	var firstFailure atomic.Value
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range pods {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lc := &http.Client{Timeout: 5 * time.Second}
				for {
					select {
					case <-stopLoad:
						return
					default:
					}
					b, failed := r.get(lc, "/x")
					sent.Add(1)
					if failed != "" || b != "A" {
						failures.Add(1)
						firstFailure.CompareAndSwap(nil, failed+" "+b)
					}
				}
			}()
		}
	}

	// A route selecting the proxy by label.
	b := &v1alpha1.SentinelRoute{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: ns}, Spec: v1alpha1.SentinelRouteSpec{
		ProxySelection: v1alpha1.ProxySelection{ProxySelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}}},
		Priority:       ptr.To[int32](100), Matches: v1alpha1.RouteMatch{PathPrefix: "/b"}, Upstream: "web-b",
	}}
	start := time.Now()
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	allRoute("/b/1", "B", 20*time.Second)
	t.Logf("SentinelRoute created: every replica routes by it after %v", time.Since(start))
	// Changed, then deleted.
	start = time.Now()
	update(t, c, b, func(b *v1alpha1.SentinelRoute) { b.Spec.Matches.PathPrefix = "/c" })
	allRoute("/c/1", "B", 20*time.Second)
	allRoute("/b/1", "A", time.Second)
	t.Logf("SentinelRoute changed: every replica routes by it after %v", time.Since(start))

	// An agent, and a route using it (fail-open: the agent is not running).
	agent := &v1alpha1.SentinelAgent{ObjectMeta: metav1.ObjectMeta{Name: "waf", Namespace: ns}, Spec: v1alpha1.SentinelAgentSpec{
		ProxySelection: v1alpha1.ProxySelection{ProxySelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}}},
		Type:           "waf", UnixSocket: filepath.Join(t.TempDir(), "waf.sock"), FailureMode: "open", TimeoutMilliseconds: ptr.To[int32](100),
	}}
	if err := c.Create(ctx, agent); err != nil {
		t.Fatal(err)
	}
	update(t, c, b, func(b *v1alpha1.SentinelRoute) { b.Spec.Agents = []string{"waf"} })
	eventually(t, 20*time.Second, "every replica has agent waf", func() bool {
		for _, r := range pods {
			if code, body := adminGet(hc, certPEM, r.admin, token, "/api/v1/agents"); code != 200 || !strings.Contains(body, `"waf"`) {
				return false
			}
		}
		return true
	})
	renderReady := func(o client.Object, st *v1alpha1.RenderStatus, reason string) *metav1.Condition {
		t.Helper()
		var cond *metav1.Condition
		eventually(t, 20*time.Second, o.GetName()+" status "+reason, func() bool {
			if c.Get(ctx, client.ObjectKeyFromObject(o), o) != nil {
				return false
			}
			cond = meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
			return cond != nil && cond.Reason == reason && cond.ObservedGeneration == o.GetGeneration()
		})
		return cond
	}
	renderReady(agent, &agent.Status, "Applied")
	renderReady(b, &b.Status, "Applied")
	if strings.Join(b.Status.Proxies, ",") != "edge" {
		t.Errorf("route b proxies %v", b.Status.Proxies)
	}

	// A bad route is rejected with the adapter's finding; the others apply.
	bad := &v1alpha1.SentinelRoute{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: v1alpha1.SentinelRouteSpec{
		ProxySelection: v1alpha1.ProxySelection{ProxyRef: &v1alpha1.ProxyReference{Name: "edge"}},
		Matches:        v1alpha1.RouteMatch{PathPrefix: "/bad"}, Upstream: "nowhere",
	}}
	if err := c.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	cond := renderReady(bad, &bad.Status, "Rejected")
	if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, `upstream "nowhere" is not defined in upstreams`) {
		t.Errorf("rejected route: %+v", cond)
	}
	c.Delete(ctx, bad)

	// Deleted: its path falls to the root route.
	start = time.Now()
	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	allRoute("/c/1", "A", 20*time.Second)
	t.Logf("SentinelRoute deleted: every replica routes without it after %v", time.Since(start))
	close(stopLoad)
	wg.Wait()
	t.Logf("%d requests during the route changes, %d failed", sent.Load(), failures.Load())
	if failures.Load() != 0 || sent.Load() < 100 {
		t.Errorf("%d of %d requests failed during the reloads (first: %v)", failures.Load(), sent.Load(), firstFailure.Load())
	}

	// A replica stopped is reported, not skipped; back, it converges.
	pods[2].Stop()
	update(t, c, agent, func(a *v1alpha1.SentinelAgent) { a.Spec.TimeoutMilliseconds = ptr.To[int32](200) })
	proxyReady("the stopped replica listed Unreachable, Degraded", func(p *v1alpha1.SentinelProxy) bool {
		d := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionDegraded)
		return d != nil && d.Status == metav1.ConditionTrue && d.Reason == "ReplicasNotUpdated" && p.Status.UpdatedReplicas == 2 &&
			len(p.Status.NotUpdated) == 1 && p.Status.NotUpdated[0].Address == pods[2].admin && p.Status.NotUpdated[0].Reason == ReasonUnreachable &&
			p.Status.NotUpdated[0].Pod == "edge-pod-c"
	})
	renderReady(agent, &agent.Status, "Reloading")
	pods[2].Start()
	proxyReady("the replica back: every replica updated", func(p *v1alpha1.SentinelProxy) bool {
		r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionTrue && p.Status.UpdatedReplicas == 3 && len(p.Status.NotUpdated) == 0
	})

	// Dropping the PDB and HPA from the spec deletes them.
	updateProxy(t, c, p, func(s *v1alpha1.SentinelProxySpec) {
		s.Disruption, s.Autoscaling, s.Replicas = nil, nil, ptr.To[int32](3)
	})
	eventually(t, 20*time.Second, "PDB and HPA deleted", func() bool {
		e1 := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, &policyv1.PodDisruptionBudget{})
		e2 := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, &autoscalingv2.HorizontalPodAutoscaler{})
		return apierrors.IsNotFound(e1) && apierrors.IsNotFound(e2)
	})
	eventually(t, 20*time.Second, "Deployment replicas 3", func() bool {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, &dep) == nil && dep.Spec.Replicas != nil && *dep.Spec.Replicas == 3
	})
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

// adminGet calls a replica's control API over TLS.
func adminGet(hc *http.Client, caPEM []byte, addr, token, path string) (int, string) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: hc.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "edge-ops.proxy.svc"}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// update changes o, again on a conflict with the operator's status writes.
func update[T client.Object](t *testing.T, c client.Client, o T, change func(T)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
			return err
		}
		change(o)
		return c.Update(context.Background(), o)
	})
	if err != nil {
		t.Fatal(err)
	}
}
