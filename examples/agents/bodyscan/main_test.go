package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestScanAcrossChunkBoundaries(t *testing.T) {
	s := New([]string{"DROP TABLE", "<script"})
	if hit := s.Scan("a", []byte("hello drop ta"), false); hit != "" {
		t.Fatalf("early hit %q", hit)
	}
	if hit := s.Scan("a", []byte("ble users"), false); hit != "drop table" {
		t.Fatalf("boundary match: %q", hit)
	}
	// Split over three chunks of one byte each.
	for i, c := range []string{"<", "s", "c", "r", "i"} {
		if hit := s.Scan("b", []byte(c), false); hit != "" {
			t.Fatalf("chunk %d: %q", i, hit)
		}
	}
	if hit := s.Scan("b", []byte("pt>"), true); hit != "<script" {
		t.Fatalf("tiny chunks: %q", hit)
	}
	if hit := s.Scan("c", []byte("clean"), true); hit != "" || s.Pending() != 0 {
		t.Fatalf("clean: %q pending %d", hit, s.Pending())
	}
	// Requests do not mix.
	s.Scan("d", []byte("xx DROP"), false)
	if hit := s.Scan("e", []byte(" TABLE"), true); hit != "" {
		t.Fatal("state leaked between requests")
	}
	s.OnCancel(context.Background(), &protocol.Cancel{CorrelationID: "d"})
	if s.Pending() != 0 {
		t.Fatalf("pending %d", s.Pending())
	}
}

func TestBodyscanOverUDS(t *testing.T) {
	c := agenttest.Start(t, run, protocol.Options{Config: json.RawMessage(`{"patterns":["secret-token"]}`)}, "-pattern", "DROP TABLE")
	ctx := agenttest.Ctx(t, 10*time.Second)
	if !c.Info().Capabilities.Features.StreamingBody || !c.Info().WantsEvent(protocol.EventRequestBodyChunk) {
		t.Fatalf("capabilities: %+v", c.Info().Capabilities)
	}
	send := func(corr, data string, idx uint32, last bool) *protocol.Response {
		r, err := c.Call(ctx, &protocol.RequestBodyChunk{CorrelationID: corr, Data: []byte(data), ChunkIndex: idx, IsLast: last})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := send("r1", "id=1; drop ta", 0, false); r.Decision.Kind != protocol.Allow || !r.NeedsMore {
		t.Fatalf("chunk 0: %+v", r)
	}
	r := send("r1", "ble x", 1, false)
	if r.Decision.Kind != protocol.Block || r.Decision.Status != 403 || r.Decision.Headers["X-Bodyscan-Match"] != "drop table" {
		t.Fatalf("chunk 1: %+v", r)
	}
	if r := send("r2", "my secret-", 0, false); !r.NeedsMore {
		t.Fatalf("r2 chunk 0: %+v", r)
	}
	if r := send("r2", "token!", 1, true); r.Decision.Kind != protocol.Block {
		t.Fatalf("config pattern: %+v", r)
	}
	if r := send("r3", "harmless", 0, true); r.Decision.Kind != protocol.Allow || r.NeedsMore {
		t.Fatalf("last clean chunk: %+v", r)
	}
	if err := c.Notify(ctx, &protocol.RequestComplete{CorrelationID: "r1"}); err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	if err := s.OnConfigure(context.Background(), &protocol.Configure{Config: json.RawMessage(`{"patterns":7}`)}); err == nil {
		t.Fatal("bad config accepted")
	}
	if err := s.OnConfigure(context.Background(), &protocol.Configure{}); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-nope"}); err == nil {
		t.Fatal("bad flag accepted")
	}
}
