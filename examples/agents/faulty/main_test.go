package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFaultyDelayAndBlockEvery(t *testing.T) {
	c := agenttest.Start(t, run, protocol.Options{}, "-delay", "300ms", "-block-every", "2", "-status", "503", "-id", "f1")
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Call(short, agenttest.Headers("f-1", "", "/", nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delay: %v", err)
	}
	ctx := agenttest.Ctx(t, 10*time.Second)
	r, err := c.Call(ctx, agenttest.Headers("f-2", "", "/", nil))
	if err != nil || r.Decision.Kind != protocol.Block || r.Decision.Status != 503 {
		t.Fatalf("second request blocked: %v %+v", err, r)
	}
	r, err = c.Call(ctx, agenttest.Headers("f-3", "", "/", nil))
	if err != nil || r.Decision.Kind != protocol.Allow || r.RequestHeaders[0].Value != "f1" {
		t.Fatalf("third: %v %+v", err, r)
	}
	for _, ev := range []protocol.Event{&protocol.RequestBodyChunk{CorrelationID: "f-3"}, &protocol.ResponseHeaders{CorrelationID: "f-3"}, &protocol.ResponseBodyChunk{CorrelationID: "f-3"}} {
		if _, err := c.Call(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFaultyHangPauseUnhealthy(t *testing.T) {
	c := agenttest.Start(t, run, protocol.Options{}, "-hang", "-pause", "-resume-after", "300ms", "-unhealthy")
	if !c.Paused() {
		// the pause arrives right after the handshake
		deadline := time.Now().Add(10 * time.Second)
		for !c.Paused() && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for (c.Paused() || c.Health().State != protocol.HealthUnhealthy) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.Paused() || c.Health().State != protocol.HealthUnhealthy {
		t.Fatalf("paused=%v health=%+v", c.Paused(), c.Health())
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Call(short, agenttest.Headers("h-1", "", "/", nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}
}

func TestFaultyCrashAfter(t *testing.T) {
	exited := make(chan int, 1)
	f := &Faulty{CrashAfter: 1, Exit: func(code int) { exited <- code }}
	f.OnRequestHeaders(context.Background(), &protocol.RequestHeaders{})
	f.OnRequestHeaders(context.Background(), &protocol.RequestHeaders{})
	if code := <-exited; code != 2 {
		t.Fatalf("exit code %d", code)
	}
}

func TestFaultyBreaksProtocol(t *testing.T) {
	for _, tc := range []struct{ flag, want string }{{"-garbage", "0xEE"}, {"-oversize", "exceeds maximum"}} {
		t.Run(tc.flag, func(t *testing.T) {
			c := agenttest.Start(t, run, protocol.Options{}, tc.flag)
			_, err := c.Call(agenttest.Ctx(t, 10*time.Second), agenttest.Headers("b-1", "", "/", nil))
			if !errors.Is(err, protocol.ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			<-c.Done()
		})
	}
	if err := run(context.Background(), []string{"-garbage", "-grpc", "127.0.0.1:1"}); err == nil {
		t.Fatal("-garbage without -uds accepted")
	}
	dir := t.TempDir()
	if err := run(context.Background(), []string{"-garbage", "-uds", filepath.Join(dir, "missing", "x.sock")}); err == nil {
		t.Fatal("bad socket path accepted")
	}
	_ = os.Remove(filepath.Join(dir, "x"))
	if err := run(context.Background(), []string{"-nope"}); err == nil {
		t.Fatal("bad flag accepted")
	}
}
