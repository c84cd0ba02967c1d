// Package sim runs the parts of a Gateway API deployment the tests do not
// get from envtest (a kube-apiserver only): the Gateways' Sentinel
// replicas as local processes, and (conformance.go) the suite's echo
// backends with their Pods and EndpointSlices.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// Replicas runs one Sentinel process per Gateway, on a host of its own
// (Host) or 127.0.0.1, and programs it through its Caddy admin endpoint.
type Replicas struct {
	// Bin is the sentinel executable (testutil.Build(tb, "./cmd/sentinel")).
	Bin string
	// Host returns the loopback IP of the nth Gateway (n from 0); nil:
	// 127.0.0.1 for all, which needs distinct listener ports.
	Host func(n int) string

	tb    testing.TB
	mu    sync.Mutex
	next  int
	procs map[types.NamespacedName]*replica
}

type replica struct {
	proc *testutil.Process
	r    controller.Replica
}

// NewReplicas returns the replicas of a test; they stop when it ends.
func NewReplicas(tb testing.TB, bin string, host func(int) string) *Replicas {
	return &Replicas{Bin: bin, Host: host, tb: tb, procs: map[types.NamespacedName]*replica{}}
}

// Programmer is an AdminProgrammer over these replicas.
func (s *Replicas) Programmer() *controller.AdminProgrammer {
	return &controller.AdminProgrammer{Replica: s.Replica, Release: s.Release}
}

// Replica returns the Gateway's replica, started on first use.
func (s *Replicas) Replica(ctx context.Context, gw *gwv1.Gateway) (*controller.Replica, error) {
	key := types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.procs[key]; r != nil {
		return &r.r, nil
	}
	host := "127.0.0.1"
	if s.Host != nil {
		host = s.Host(s.next)
	}
	s.next++
	admin, err := testutil.LookupFreeAddr(host)
	if err != nil {
		return nil, err
	}
	adminCfg, _ := json.Marshal(map[string]any{"listen": admin, "origins": []string{admin}})
	dir, err := os.MkdirTemp("", "gw-replica-")
	if err != nil {
		return nil, err
	}
	s.tb.Cleanup(func() { os.RemoveAll(dir) })
	cfgFile := filepath.Join(dir, "caddy.json")
	init, _ := json.Marshal(map[string]any{"admin": json.RawMessage(adminCfg)})
	if err := os.WriteFile(cfgFile, init, 0o600); err != nil {
		return nil, err
	}
	p := testutil.NewProcess(s.tb, "sentinel "+key.String(), append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir), s.Bin, "run", "--config", cfgFile)
	p.Grace = 3 * time.Second
	p.Start()
	url := "http://" + admin
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/config/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("replica of %s: admin endpoint %s not up after 20s: %w", key, admin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ipType := gwv1.IPAddressType
	r := &replica{proc: p, r: controller.Replica{
		AdminURL: url,
		Admin:    adminCfg,
		BindHost: host,
		Address:  gwv1.GatewayStatusAddress{Type: &ipType, Value: host},
	}}
	s.procs[key] = r
	return &r.r, nil
}

// Release stops a deleted Gateway's replica.
func (s *Replicas) Release(_ context.Context, key types.NamespacedName) error {
	s.mu.Lock()
	r := s.procs[key]
	delete(s.procs, key)
	s.mu.Unlock()
	if r != nil {
		r.proc.Stop()
	}
	return nil
}
