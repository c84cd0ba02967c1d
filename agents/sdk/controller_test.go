package sdk_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestControllerUDSAndGRPC(t *testing.T) {
	ctl := sdk.NewController()
	path := serveUDS(t, sdk.Base{}, sdk.Options{Controller: ctl})
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.ServeGRPCListener(ctx, ln, sdk.Base{}, sdk.Options{Controller: ctl}) }()
	defer func() {
		cancel()
		<-done
	}()
	u, err := protocol.DialUDS(ctxT(t, 10*time.Second), path, protocol.Options{PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	g, err := protocol.DialGRPC(ctxT(t, 10*time.Second), "http://"+ln.Addr().String(), protocol.GRPCOptions{Options: protocol.Options{PingInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	waitFor(t, "two peers", func() bool { return ctl.Connections() == 2 })
	ctl.Pause()
	waitFor(t, "paused", func() bool { return u.Paused() && g.Paused() })
	ctl.SetHealth(protocol.HealthUnhealthy, "disk full")
	waitFor(t, "unhealthy", func() bool {
		return u.Health().State == protocol.HealthUnhealthy && g.Health().State == protocol.HealthUnhealthy && g.Health().Message == "disk full"
	})
	ctl.Resume()
	waitFor(t, "resumed", func() bool { return !u.Paused() && !g.Paused() })
	ctl.Pause()
	late, err := protocol.DialGRPC(ctxT(t, 10*time.Second), "http://"+ln.Addr().String(), protocol.GRPCOptions{Options: protocol.Options{PingInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "late peer paused", late.Paused)
	late.Close()
	u.Close()
	g.Close()
	waitFor(t, "peers gone", func() bool { return ctl.Connections() == 0 })

	var b sdk.Base
	b.OnCancel(context.Background(), &protocol.Cancel{})
	b.OnRequestComplete(context.Background(), &protocol.RequestComplete{})
}
