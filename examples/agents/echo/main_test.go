package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEchoUDS(t *testing.T) {
	c := agenttest.Start(t, run, protocol.Options{}, "-name", "first")
	ctx := agenttest.Ctx(t, 10*time.Second)
	r, err := c.Call(ctx, agenttest.Headers("e-1", "127.0.0.1:1", "/", nil))
	if err != nil || len(r.RequestHeaders) != 1 || r.RequestHeaders[0].Name != "X-Echo-Agent" || r.RequestHeaders[0].Value != "first" {
		t.Fatalf("%v %+v", err, r)
	}
	r, err = c.Call(ctx, &protocol.ResponseHeaders{CorrelationID: "e-1", Status: 200})
	if err != nil || r.ResponseHeaders[0].Name != "X-Echo-Agent-Response" || r.ResponseHeaders[0].Value != "first" {
		t.Fatalf("%v %+v", err, r)
	}
	cfg := agenttest.Start(t, run, protocol.Options{Config: json.RawMessage(`{"name":"from-config"}`)})
	r, err = cfg.Call(ctx, agenttest.Headers("e-2", "", "/", nil))
	if err != nil || r.RequestHeaders[0].Value != "from-config" {
		t.Fatalf("config: %v %+v", err, r)
	}
}

func TestEchoGRPCAndErrors(t *testing.T) {
	addr := testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-grpc", addr, "-name", "g"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	agenttest.WaitDial(t, "tcp", addr, done)
	c, err := protocol.DialGRPC(agenttest.Ctx(t, 10*time.Second), "http://"+addr, protocol.GRPCOptions{Options: protocol.Options{PingInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Call(agenttest.Ctx(t, 10*time.Second), agenttest.Headers("g-1", "", "/", nil)); err != nil || r.RequestHeaders[0].Value != "g" {
		t.Fatalf("%v %+v", err, r)
	}
	if err := run(context.Background(), nil); err == nil {
		t.Fatal("no transport accepted")
	}
	if err := run(context.Background(), []string{"-bogus"}); err == nil {
		t.Fatal("bad flag accepted")
	}
	if err := run(context.Background(), []string{"-grpc", addr, "-tls-cert", "/nonexistent", "-tls-key", "/nonexistent"}); err == nil {
		t.Fatal("bad TLS accepted")
	}
	e := &Echo{}
	if err := e.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`[1]`)}); err == nil {
		t.Fatal("bad config accepted")
	}
	if _, err := protocol.DialUDS(agenttest.Ctx(t, time.Second), "/nonexistent/x.sock", protocol.Options{}); err == nil || errors.Is(err, nil) {
		t.Fatal("dial nowhere")
	}
}
