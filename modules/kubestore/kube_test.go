package kubestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/registry"
)

// env is the package's control plane (nil without the binaries).
var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

// admin returns an admin clientset.
func admin(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// restricted creates a namespace, the state ConfigMap and a user allowed
// only get, watch and update on that ConfigMap (the documented RBAC), and
// returns that user's kubeconfig.
func restricted(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	cs := admin(t)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := "replica-" + ns
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel-state", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{name}, Verbs: []string{"get", "watch", "update"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
		},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel-state", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sentinel-state"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env.Kubeconfig(t, t.TempDir(), user)
}

// newStore provisions a store as a config would.
func newStore(t *testing.T, kubeconfig, ns, name string) *Kubernetes {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	k := &Kubernetes{Kubeconfig: kubeconfig, Namespace: ns, Name: name}
	if err := k.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

// replica is one registry of a fleet on its own store instance.
func replica(t *testing.T, kubeconfig, ns, name string) *registry.Registry {
	t.Helper()
	r := registry.New()
	r.Reconcile([]registry.UpstreamSpec{{ID: "web", Targets: []registry.TargetSpec{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}}, []string{"r1"})
	if err := r.UseStore(newStore(t, kubeconfig, ns, name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.UseStore(nil) })
	return r
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

func weightOf(r *registry.Registry, id, addr string) int {
	u, ok := r.Get(id)
	if !ok {
		return -1
	}
	for _, t := range u.Targets {
		if t.Address == addr {
			return t.Weight
		}
	}
	return -1
}

// TestStoreCASAndWatch: the store's own contract against a real API
// server, as a user with only get/watch/update on the ConfigMap: a save
// on a stale revision is refused with ErrStale, a watch sees each save
// in order, and a watch that fell behind (a revision long gone) reads the
// current state again.
func TestStoreCASAndWatch(t *testing.T) {
	kubetest.Need(t, env)
	kc := restricted(t, "cas", "sentinel-state")
	a, b := newStore(t, kc, "cas", "sentinel-state"), newStore(t, kc, "cas", "sentinel-state")
	ctx := context.Background()
	data, rev, err := a.LoadRevision(ctx)
	if err != nil || data != nil || rev == 0 {
		t.Fatalf("empty ConfigMap: %q %d %v", data, rev, err)
	}
	var mu sync.Mutex
	var seen []string
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go b.Watch(wctx, rev, func(d []byte, _ int64) { mu.Lock(); seen = append(seen, string(d)); mu.Unlock() })

	r1, err := a.SaveIf(ctx, []byte("one"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SaveIf(ctx, []byte("lost"), rev); !errors.Is(err, registry.ErrStale) {
		t.Fatalf("save on a replaced revision: %v, want ErrStale", err)
	}
	if _, err := b.SaveIf(ctx, []byte("two"), r1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the watch sees both saves", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(seen, ",") == "one,two"
	})
	if err := a.Save([]byte("three")); err != nil {
		t.Fatal(err)
	}
	if d, err := b.Load(); err != nil || string(d) != "three" {
		t.Fatalf("Load: %q %v", d, err)
	}
	// A watch from revision 1 (compacted or never ours) starts from the
	// current state.
	var got []byte
	var gotMu sync.Mutex
	go b.Watch(wctx, 1, func(d []byte, _ int64) { gotMu.Lock(); got = d; gotMu.Unlock() })
	eventually(t, 5*time.Second, "a watch from an old revision reads the current state", func() bool {
		gotMu.Lock()
		defer gotMu.Unlock()
		return string(got) == "three"
	})
	// The restricted user cannot create: without the ConfigMap, the
	// error says so.
	c := newStore(t, kc, "cas", "other")
	if _, err := c.SaveIf(ctx, []byte("x"), 0); err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "cas/other") {
		t.Fatalf("create without the right: %v", err)
	}
}

// TestFleetOverKubernetes: three registries sharing one ConfigMap; a
// change made on one reaches the others, concurrent changes are all kept,
// and a state written by another writer (the operator) with replace set
// is applied everywhere.
func TestFleetOverKubernetes(t *testing.T) {
	kubetest.Need(t, env)
	kc := restricted(t, "fleet", "sentinel-state")
	fleet := []*registry.Registry{replica(t, kc, "fleet", "sentinel-state"), replica(t, kc, "fleet", "sentinel-state"), replica(t, kc, "fleet", "sentinel-state")}
	for i, r := range fleet {
		w := 10 + i
		if _, err := r.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		for j, o := range fleet {
			took := eventually(t, 5*time.Second, fmt.Sprintf("replica %d sees weight %d set on replica %d", j, w, i), func() bool { return weightOf(o, "web", "10.0.0.1:80") == w })
			t.Logf("replica %d → %d: %v", i, j, took)
		}
	}
	// Concurrent changes on all replicas: no acknowledged change is lost.
	// Three replicas writing in tight loops can starve one past the
	// registry's 16 tries; that change is then refused. (A change whose
	// save timed out may still have reached the API server: a refused
	// change may show up, an acknowledged one must.)
	var wg sync.WaitGroup
	const n = 100
	var okMu sync.Mutex
	kept := map[string]bool{}
	for i, r := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				addr := fmt.Sprintf("10.1.%d.%d:80", i, j)
				_, err := r.AddTarget("web", registry.Target{Address: addr, Weight: 1}, 0)
				if err != nil && !errors.Is(err, registry.ErrPersist) {
					t.Errorf("replica %d: %v", i, err)
				}
				okMu.Lock()
				kept[addr] = err == nil
				okMu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := 2
	for _, ok := range kept {
		if ok {
			want++
		}
	}
	t.Logf("%d of %d concurrent changes kept, the others refused", want-2, 3*n)
	if want-2 < 3*n/2 {
		t.Fatalf("only %d of %d concurrent changes kept", want-2, 3*n)
	}
	for j, o := range fleet {
		eventually(t, 5*time.Second, fmt.Sprintf("replica %d has the %d targets whose change was acknowledged", j, want), func() bool {
			u, _ := o.Get("web")
			have := map[string]bool{}
			for _, tg := range u.Targets {
				have[tg.Address] = true
			}
			for addr, ok := range kept {
				if ok && !have[addr] {
					return false
				}
			}
			return true
		})
	}
	// Another writer (the operator) replaces the targets.
	cs := admin(t)
	cm, err := cs.CoreV1().ConfigMaps("fleet").Get(context.Background(), "sentinel-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["state"] = `{"version":1,"upstreams":[{"id":"web","origin":"config","replace":true,"version":1000,"override":[{"address":"10.9.9.9:80","weight":1,"state":"active","origin":"api"}]}]}`
	if _, err := cs.CoreV1().ConfigMaps("fleet").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for j, o := range fleet {
		eventually(t, 2*time.Second, fmt.Sprintf("replica %d routes only to the operator's target", j), func() bool {
			u, _ := o.Get("web")
			return len(u.Targets) == 1 && u.Targets[0].Address == "10.9.9.9:80" && u.Version == 1000
		})
	}
	if st := fleet[0].Status(); st.Revision == 0 || !strings.HasPrefix(st.Store, "kubernetes configmap fleet/sentinel-state") || st.SyncError != "" {
		t.Fatalf("status %+v", st)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		k    Kubernetes
		want string
	}{
		{Kubernetes{}, "name (the ConfigMap holding the state) is required"},
		{Kubernetes{Name: "Bad_Name"}, `name "Bad_Name" is not a ConfigMap name`},
		{Kubernetes{Name: "ok", Namespace: "a.b"}, `namespace "a.b"`},
		{Kubernetes{Name: "ok", Key: "a/b"}, `key "a/b"`},
		{Kubernetes{Name: "ok", Timeout: -1}, "timeout must not be negative"},
	} {
		err := c.k.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.k, err, c.want)
		}
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	k := &Kubernetes{Name: "x", Kubeconfig: "/nonexistent/kubeconfig"}
	if err := k.Provision(ctx); err == nil || !strings.Contains(err.Error(), "kubeconfig /nonexistent/kubeconfig") {
		t.Errorf("missing kubeconfig: %v", err)
	}
	k = &Kubernetes{Name: "x"}
	if err := k.Provision(ctx); err == nil || !strings.Contains(err.Error(), "not in a cluster") {
		t.Errorf("no kubeconfig outside a cluster: %v", err)
	}
}
