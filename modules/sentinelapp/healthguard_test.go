package sentinelapp

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestHealthChecksApplyTheTargetPolicy: the TCP, HTTP and gRPC checks of
// a target added through the API with a host name refuse a connection
// that reached a refused address (here loopback), as the proxy's dials
// do; without the guard they pass.
func TestHealthChecksApplyTheTargetPolicy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()
	addr := ln.Addr().String()

	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "u", Targets: []registry.TargetSpec{{Address: "cfg.test:1"}}}}, nil)
	if _, err := reg.AddTarget("u", registry.Target{Address: "api.test:80", Weight: 1}, 0); err != nil {
		t.Fatal(err)
	}
	guarded := reg.GuardContext(context.Background(), "api.test:80")
	httpCheck := &HTTPCheck{}
	grpcCheck := &GRPCCheck{}
	for _, p := range []caddy.Provisioner{httpCheck, grpcCheck} {
		if err := p.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]Checker{"tcp": TCPCheck{}, "http": httpCheck, "grpc": grpcCheck} {
		err := c.Check(guarded, addr)
		if err == nil || !strings.Contains(err.Error(), "refused by the target policy") {
			t.Errorf("%s check of a rebound API target: %v", name, err)
		}
	}
	// Unguarded: the TCP and gRPC checks pass (the HTTP one gets a
	// gRPC server's answer, not a refusal).
	for name, c := range map[string]Checker{"tcp": TCPCheck{}, "grpc": grpcCheck} {
		if err := c.Check(context.Background(), addr); err != nil {
			t.Errorf("%s check of an unguarded target: %v", name, err)
		}
	}
}
