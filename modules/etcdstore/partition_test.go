package etcdstore

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/registry"
)

// link is a TCP forwarder between one replica and etcd that the test can
// cut (closing every connection and refusing new ones) and heal.
type link struct {
	ln     net.Listener
	to     string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
	closed bool
}

func newLink(t testing.TB, to string) *link {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, to: to}
	go l.serve()
	t.Cleanup(func() { l.mu.Lock(); l.closed = true; l.mu.Unlock(); ln.Close(); l.setCut(true) })
	return l
}

func (l *link) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.cut || l.closed {
			l.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", l.to)
		if err != nil {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns = append(l.conns, c, u)
		l.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { io.Copy(c, u); c.Close() }()
	}
}

// setCut cuts the link (every connection closed, new ones refused) or
// heals it.
func (l *link) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for _, c := range l.conns {
			c.Close()
		}
		l.conns = nil
	}
}

// TestFleetReplicaPartitioned cuts one replica off etcd while another
// goes on changing the state: the cut-off replica keeps routing by what
// it had, its own changes fail (and are not applied), and once healed it
// converges on the changes it missed without a reload.
func TestFleetReplicaPartitioned(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	l := newLink(t, etcd.Endpoint[len("http://"):])
	a := replica(t, "http://"+l.ln.Addr().String(), "/part/")
	b := replica(t, etcd.Endpoint, "/part/")

	w := 3
	if _, err := b.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a sees b's first change", func() bool { return weightOf(a, "web", "10.0.0.1:80") == 3 })

	l.setCut(true)
	w = 7
	if _, err := b.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddTarget("web", registry.Target{Address: "10.0.0.3:80", Weight: 1}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := weightOf(a, "web", "10.0.0.1:80"); got != 3 {
		t.Fatalf("cut off, a routes with weight %d, want the last state it had (3)", got)
	}
	w2 := 9
	_, err := a.PatchTarget("web", "10.0.0.2:80", registry.TargetPatch{Weight: &w2}, 0)
	if err == nil || errors.Is(err, registry.ErrConflict) {
		t.Fatalf("a change on the cut-off replica: %v, want a failure to save", err)
	}
	if got := weightOf(a, "web", "10.0.0.2:80"); got == 9 {
		t.Fatal("a applied a change it could not save")
	}

	l.setCut(false)
	took := eventually(t, 10*time.Second, "a converges on b's changes once healed", func() bool {
		return weightOf(a, "web", "10.0.0.1:80") == 7 && weightOf(a, "web", "10.0.0.3:80") == 1
	})
	t.Logf("converged %v after the link healed", took)
	if _, err := a.PatchTarget("web", "10.0.0.2:80", registry.TargetPatch{Weight: &w2}, 0); err != nil {
		t.Fatalf("a change on the healed replica: %v", err)
	}
	eventually(t, time.Second, "b sees a's change", func() bool { return weightOf(b, "web", "10.0.0.2:80") == 9 })
}

// BenchmarkFleetPropagation measures the time from a change made on one
// replica to the moment every other replica of a fleet of three applied
// it (ns/op), against one real etcd.
func BenchmarkFleetPropagation(b *testing.B) {
	etcd := testutil.StartEtcd(b)
	fleet := []*registry.Registry{replica(b, etcd.Endpoint, "/bench/"), replica(b, etcd.Endpoint, "/bench/"), replica(b, etcd.Endpoint, "/bench/")}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := 1 + i%1000
		src := fleet[i%3]
		if _, err := src.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
			b.Fatal(err)
		}
		for _, r := range fleet {
			for weightOf(r, "web", "10.0.0.1:80") != w {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}

// TestFleetReplicaStartsWhileEtcdDown: a replica that starts while etcd is
// down goes on from its configuration and, when etcd is back, reads the
// fleet's state and follows it, without a reload.
func TestFleetReplicaStartsWhileEtcdDown(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	a := replica(t, etcd.Endpoint, "/late/")
	w := 5
	if _, err := a.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	etcd.Stop()

	late := registry.New()
	late.Reconcile([]registry.UpstreamSpec{{ID: "web", Targets: []registry.TargetSpec{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}}, []string{"r1"})
	err := late.UseStore(newStore(t, etcd.Endpoint, "/late/"))
	t.Cleanup(func() { late.UseStore(nil) })
	if err == nil || late.Status().LoadError == "" {
		t.Fatalf("UseStore with etcd down: %v, status %+v", err, late.Status())
	}
	if got := weightOf(late, "web", "10.0.0.1:80"); got != 1 {
		t.Fatalf("started from weight %d, want the configuration's (1)", got)
	}

	etcd.Start()
	took := eventually(t, 15*time.Second, "the late replica reads the fleet's state once etcd is back", func() bool {
		return weightOf(late, "web", "10.0.0.1:80") == 5
	})
	t.Logf("converged %v after etcd came back", took)
	if st := late.Status(); st.LoadError != "" || st.Loaded.IsZero() {
		t.Errorf("status after converging: %+v", st)
	}
	w = 6
	if _, err := a.PatchTarget("web", "10.0.0.1:80", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the late replica follows later changes", func() bool { return weightOf(late, "web", "10.0.0.1:80") == 6 })
}
