package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/registry"
)

// newStore provisions a store on the test's etcd, as a config would.
func newStore(t testing.TB, endpoint, prefix string) *Etcd {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	e := &Etcd{Endpoints: []string{endpoint}, Prefix: prefix, DialTimeout: caddy.Duration(2 * time.Second)}
	if err := e.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Cleanup() })
	return e
}

// replica is one registry of a fleet, on its own store instance.
func replica(t testing.TB, endpoint, prefix string) *registry.Registry {
	t.Helper()
	r := registry.New()
	r.Reconcile([]registry.UpstreamSpec{{ID: "web", Targets: []registry.TargetSpec{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}}, []string{"r1"})
	if err := r.UseStore(newStore(t, endpoint, prefix)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.UseStore(nil) })
	return r
}

// eventually waits up to d for ok.
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

func TestFleetChangesReachEveryReplica(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	fleet := []*registry.Registry{replica(t, etcd.Endpoint, "/f1/"), replica(t, etcd.Endpoint, "/f1/"), replica(t, etcd.Endpoint, "/f1/")}
	for i, r := range fleet {
		w := 10 + i
		if _, err := r.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		for j, o := range fleet {
			took := eventually(t, time.Second, fmt.Sprintf("replica %d sees weight %d set on replica %d", j, w, i), func() bool { return weightOf(o, "web", "10.0.0.1:80") == w })
			t.Logf("replica %d → %d: %v", i, j, took)
		}
	}
	// An API upstream and a route switch, made on different replicas.
	if _, err := fleet[1].CreateUpstream("api-made", []registry.Target{{Address: "10.0.1.1:80", Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := fleet[2].SetRouteEnabled("r1", false); err != nil {
		t.Fatal(err)
	}
	for j, o := range fleet {
		eventually(t, time.Second, fmt.Sprintf("replica %d sees the API upstream and the disabled route", j), func() bool {
			_, ok := o.Get("api-made")
			return ok && !o.RouteFlag("r1").Enabled()
		})
	}
	// The ETag of a changed upstream is the same everywhere.
	eventually(t, time.Second, "same version on every replica", func() bool {
		a, _ := fleet[0].Get("web")
		for _, o := range fleet[1:] {
			if b, _ := o.Get("web"); b.Version != a.Version {
				return false
			}
		}
		return true
	})
	// Deleting the API upstream on another replica removes it everywhere.
	if err := fleet[0].DeleteUpstream("api-made", 0); err != nil {
		t.Fatal(err)
	}
	for j, o := range fleet {
		eventually(t, time.Second, fmt.Sprintf("replica %d forgets the deleted upstream", j), func() bool {
			_, ok := o.Get("api-made")
			return !ok
		})
	}
	if st := fleet[0].Status(); st.Revision == 0 || !strings.HasPrefix(st.Store, "etcd ") || st.SaveError != "" {
		t.Fatalf("status %+v", st)
	}
}

// A change made against a version another replica already replaced is
// refused (If-Match), even before the replica saw the other change.
func TestFleetIfMatchAcrossReplicas(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	a, b := replica(t, etcd.Endpoint, "/f2/"), replica(t, etcd.Endpoint, "/f2/")
	u, _ := a.Get("web")
	w := 7
	if _, err := a.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, u.Version); err != nil {
		t.Fatal(err)
	}
	u2, _ := a.Get("web")
	// b may not have applied a's change yet: its save is stale, it
	// refreshes, and the If-Match of the old version then fails.
	w = 9
	_, err := b.PatchTarget("web", "10.0.0.2:80", registry.TargetPatch{Weight: &w}, u.Version)
	if !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("stale If-Match on the other replica: %v, want ErrConflict", err)
	}
	if _, err := b.PatchTarget("web", "10.0.0.2:80", registry.TargetPatch{Weight: &w}, u2.Version); err != nil {
		t.Fatalf("current If-Match on the other replica: %v", err)
	}
	eventually(t, time.Second, "a sees b's change", func() bool { return weightOf(a, "web", "10.0.0.2:80") == 9 && weightOf(a, "web", "10.0.0.1:80") == 7 })
}

// 1,000 changes made at once, spread over three replicas: none is lost,
// and every replica ends with all of them.
func TestFleetConcurrentChanges(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	fleet := []*registry.Registry{replica(t, etcd.Endpoint, "/f3/"), replica(t, etcd.Endpoint, "/f3/"), replica(t, etcd.Endpoint, "/f3/")}
	if _, err := fleet[0].CreateUpstream("many", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range fleet {
		eventually(t, time.Second, "the upstream reaches every replica", func() bool { _, ok := r.Get("many"); return ok })
	}
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("10.1.%d.%d:80", i/250, i%250+1)
			if _, err := fleet[i%3].AddTarget("many", registry.Target{Address: addr, Weight: 1}, 0); err != nil {
				errs <- fmt.Errorf("change %d on replica %d: %w", i, i%3, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for j, r := range fleet {
		eventually(t, 5*time.Second, fmt.Sprintf("replica %d has all %d targets", j, n), func() bool {
			u, _ := r.Get("many")
			return len(u.Targets) == n
		})
	}
}

// With etcd down, changes fail with ErrPersist and the replicas keep
// their state; when it is back, changes flow to every replica again.
func TestFleetEtcdDownAndBack(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	a, b := replica(t, etcd.Endpoint, "/f4/"), replica(t, etcd.Endpoint, "/f4/")
	w := 5
	if _, err := a.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b sees a's change", func() bool { return weightOf(b, "web", "10.0.0.1:80") == 5 })
	etcd.Stop()
	w = 6
	_, err := a.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0)
	if !errors.Is(err, registry.ErrPersist) {
		t.Fatalf("change with etcd down: %v, want ErrPersist", err)
	}
	if got := weightOf(a, "web", "10.0.0.1:80"); got != 5 {
		t.Fatalf("a failed change was applied: weight %d", got)
	}
	if st := a.Status(); st.SaveError == "" {
		t.Fatalf("status does not say the save failed: %+v", st)
	}
	if p := b.Pool("web"); p == nil || p.Weight("10.0.0.1:80") != 5 {
		t.Fatal("b lost its state while etcd was down")
	}
	etcd.Start()
	w = 8
	eventually(t, 15*time.Second, "a change succeeds once etcd is back", func() bool {
		_, err := a.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0)
		return err == nil
	})
	eventually(t, 15*time.Second, "b's watch recovers and sees it", func() bool { return weightOf(b, "web", "10.0.0.1:80") == 8 })
}

// A watch that starts behind a compaction reads the current state.
func TestWatchAfterCompaction(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	s := newStore(t, etcd.Endpoint, "/f5/")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rev int64
	for i := range 3 {
		r, err := s.SaveIf(ctx, []byte(fmt.Sprintf(`{"n":%d}`, i)), rev)
		if err != nil {
			t.Fatal(err)
		}
		rev = r
	}
	if _, err := s.cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(wctx, 1, func(d []byte, r int64) { got <- string(d) }) }()
	select {
	case d := <-got:
		if d != `{"n":2}` {
			t.Fatalf("after compaction the watch applied %s, want the current state", d)
		}
	case <-ctx.Done():
		t.Fatal("the watch never re-read the state after the compaction")
	}
	wcancel()
	<-done
	// A stale SaveIf is refused.
	if _, err := s.SaveIf(ctx, []byte(`{}`), 1); !errors.Is(err, registry.ErrStale) {
		t.Fatalf("stale SaveIf: %v", err)
	}
	// Save and Load, for tools.
	if err := s.Save([]byte(`x`)); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Load(); err != nil || string(d) != "x" {
		t.Fatalf("Load: %q %v", d, err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		e    Etcd
		want string
	}{
		{Etcd{}, "at least one endpoint"},
		{Etcd{Endpoints: []string{""}}, "endpoints[0]"},
		{Etcd{Endpoints: []string{"a:1"}, Prefix: "x"}, "must start with /"},
		{Etcd{Endpoints: []string{"a:1"}, Password: "secret"}, "needs a username"},
		{Etcd{Endpoints: []string{"a:1"}, CertFile: "c"}, "cert_file and key_file"},
		// Credentials in an endpoint would be shown with the store's name
		// (GET /api/v1/state to read tokens, logs, errors).
		{Etcd{Endpoints: []string{"a:1", "https://root:secret@etcd:2379"}}, "endpoints[1] holds credentials"},
		{Etcd{Endpoints: []string{"root:secret@etcd:2379 x"}}, "endpoints[0] holds credentials"},
	} {
		err := c.e.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%+v: %v, want %q", c.e, err, c.want)
		}
	}
}

// TestTLSClientCertificates runs the store against an etcd that speaks
// TLS and requires client certificates: with the client certificate the
// state is saved and read back; without it, reads fail (and the error
// names the store, not credentials); unreadable TLS files are refused at
// provisioning with the setting that names them.
func TestTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey := testutil.WriteCert(t, dir, "127.0.0.1")
	cliCert, cliKey := testutil.WriteCert(t, dir, "replica")
	etcd := testutil.StartEtcdTLS(t, &testutil.EtcdTLS{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: cliCert})
	if etcd == nil {
		return
	}
	provision := func(e *Etcd) error {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		if e.DialTimeout == 0 {
			e.DialTimeout = caddy.Duration(2 * time.Second)
		}
		err := e.Provision(ctx)
		if err == nil {
			t.Cleanup(func() { e.Cleanup() })
		}
		return err
	}

	good := &Etcd{Endpoints: []string{etcd.Endpoint}, Prefix: "/tls/", CAFile: srvCert, CertFile: cliCert, KeyFile: cliKey}
	if err := provision(good); err != nil {
		t.Fatal(err)
	}
	if err := good.Save([]byte(`{"v":1}`)); err != nil {
		t.Fatalf("Save over TLS: %v", err)
	}
	if d, err := good.Load(); err != nil || string(d) != `{"v":1}` {
		t.Fatalf("Load over TLS: %q %v", d, err)
	}

	// The server's CA but no client certificate: refused by etcd.
	anon := &Etcd{Endpoints: []string{etcd.Endpoint}, Prefix: "/tls/", CAFile: srvCert, DialTimeout: caddy.Duration(500 * time.Millisecond)}
	if err := provision(anon); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Load(); err == nil {
		t.Fatal("an etcd that requires client certificates answered a client without one")
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e    Etcd
		want string
	}{
		{Etcd{CAFile: filepath.Join(dir, "missing.pem")}, "reading ca_file"},
		{Etcd{CAFile: notPEM}, "holds no PEM certificate"},
		{Etcd{CertFile: notPEM, KeyFile: notPEM}, "loading cert_file"},
	} {
		e := c.e
		e.Endpoints = []string{etcd.Endpoint}
		e.Prefix = "/bad/" + strings.ReplaceAll(c.want, " ", "-") + "/"
		err := provision(&e)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hello") {
			t.Errorf("%s: %v, want an error with %q that does not show the file's content", c.want, err, c.want)
		}
	}
}

// TestPlaceholdersInCredentials checks that {env.*} placeholders in the
// username and password are replaced at provisioning (so the secret can
// stay out of the Caddy JSON), and that failing to reach etcd with them
// is reported without the password.
func TestPlaceholdersInCredentials(t *testing.T) {
	t.Setenv("SENTINEL_TEST_ETCD_USER", "fleet")
	t.Setenv("SENTINEL_TEST_ETCD_PASSWORD", "s3cret")
	e := &Etcd{Endpoints: []string{"127.0.0.1:1"}, Username: "{env.SENTINEL_TEST_ETCD_USER}", Password: "{env.SENTINEL_TEST_ETCD_PASSWORD}", DialTimeout: caddy.Duration(100 * time.Millisecond)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := e.Provision(ctx)
	if err == nil {
		e.Cleanup()
		t.Fatal("authenticating to an unreachable etcd succeeded")
	}
	if e.Username != "fleet" || e.Password != "s3cret" {
		t.Errorf("placeholders not replaced: %q %q", e.Username, e.Password)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "s3cret") || strings.Contains(e.String(), "s3cret") {
		t.Errorf("error %q, name %q: want the endpoint, never the password", err, e.String())
	}
}
