// Command faulty is an example Sentinel agent for failure testing: it
// answers allow (adding X-Faulty-Agent: <id>) but can be made slow, crash,
// hang, block every Nth request, pause (flow control), report unhealthy, or
// break the protocol with garbage or an oversized frame.
//
//	go run ./examples/agents/faulty -uds /tmp/f.sock -delay 2s
//	go run ./examples/agents/faulty -uds /tmp/f.sock -crash-after 3
//	go run ./examples/agents/faulty -uds /tmp/f.sock -garbage        # UDS only
//	go run ./examples/agents/faulty -grpc 127.0.0.1:50051 -block-every 2 -status 503
//	go run ./examples/agents/faulty -uds /tmp/f.sock -unhealthy -healthy-after 5s
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agentrun"
)

// Faulty is the fault-injecting handler.
type Faulty struct {
	sdk.Base
	// ID is put in X-Faulty-Agent.
	ID string
	// Delay is waited before answering (cut short when the proxy cancels).
	Delay time.Duration
	// CrashAfter exits the process after this many events (0 = never).
	CrashAfter int64
	// Hang never answers until the proxy cancels or the connection ends.
	Hang bool
	// BlockEvery blocks every Nth request-headers event (0 = never).
	BlockEvery int64
	// Status is the block status.
	Status int
	// Exit is called by CrashAfter (default os.Exit).
	Exit func(code int)

	events   atomic.Int64
	requests atomic.Int64
}

// Interface guard.
var _ sdk.Handler = (*Faulty)(nil)

func (f *Faulty) event(ctx context.Context) {
	n := f.events.Add(1)
	if f.CrashAfter > 0 && n > f.CrashAfter {
		exit := f.Exit
		if exit == nil {
			exit = os.Exit
		}
		fmt.Fprintf(os.Stderr, "faulty: crashing after %d events\n", f.CrashAfter)
		exit(2)
	}
	if f.Hang {
		<-ctx.Done()
		return
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-ctx.Done():
		}
	}
}

// OnRequestHeaders applies the faults and tags the request.
func (f *Faulty) OnRequestHeaders(ctx context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	f.event(ctx)
	if n := f.requests.Add(1); f.BlockEvery > 0 && n%f.BlockEvery == 0 {
		return protocol.BlockResponse(f.Status, fmt.Sprintf("faulty agent blocks request %d", n))
	}
	return &protocol.Response{RequestHeaders: []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-Faulty-Agent", Value: f.ID}}}
}

// OnRequestBody applies the faults.
func (f *Faulty) OnRequestBody(ctx context.Context, _ *protocol.RequestBodyChunk) *protocol.Response {
	f.event(ctx)
	return nil
}

// OnResponseHeaders applies the faults.
func (f *Faulty) OnResponseHeaders(ctx context.Context, _ *protocol.ResponseHeaders) *protocol.Response {
	f.event(ctx)
	return nil
}

// OnResponseBody applies the faults.
func (f *Faulty) OnResponseBody(ctx context.Context, _ *protocol.ResponseBodyChunk) *protocol.Response {
	f.event(ctx)
	return nil
}

// Breaker answers the first event of each connection with a protocol
// violation instead of a response: "garbage" (an unknown type byte and
// junk) or "oversize" (a length prefix of 32 MiB). Handshake and pings are
// served normally.
type Breaker struct {
	// Mode is "garbage" or "oversize".
	Mode string
	// ID is the agent id in the handshake.
	ID string
}

// Serve accepts connections on ln until ctx ends.
func (b *Breaker) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("faulty: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			b.serveConn(conn)
		}()
	}
}

func (b *Breaker) serveConn(conn net.Conn) {
	br := bufio.NewReader(conn)
	f, err := protocol.ReadFrame(br, protocol.DialectAuto)
	if err != nil || f.Type != protocol.MsgHandshakeRequest {
		return
	}
	resp, _ := json.Marshal(protocol.HandshakeResponse{ProtocolVersion: protocol.ProtocolVersion, Success: true, Encoding: "json",
		Capabilities: sdk.Options{AgentID: b.ID}.Capabilities()})
	if protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, resp) != nil {
		return
	}
	for {
		f, err := protocol.ReadFrame(br, protocol.DialectAuto)
		if err != nil {
			return
		}
		switch f.Type {
		case protocol.MsgPing:
			_ = protocol.WriteFrame(conn, protocol.MsgPong, f.Payload)
		case protocol.MsgCancel:
		default:
			if b.Mode == "oversize" {
				_, _ = conn.Write(binary.BigEndian.AppendUint32(nil, 32<<20))
			} else {
				_, _ = conn.Write([]byte{0, 0, 0, 9, 0xEE, 'g', 'a', 'r', 'b', 'a', 'g', 'e', '!'})
			}
			time.Sleep(100 * time.Millisecond)
			return
		}
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("faulty", flag.ContinueOnError)
	var fl agentrun.Flags
	fl.Bind(fs, "faulty")
	h := &Faulty{}
	fs.DurationVar(&h.Delay, "delay", 0, "wait this long before answering each event")
	fs.Int64Var(&h.CrashAfter, "crash-after", 0, "exit(2) after this many events")
	fs.BoolVar(&h.Hang, "hang", false, "never answer (until the proxy cancels)")
	fs.Int64Var(&h.BlockEvery, "block-every", 0, "block every Nth request")
	fs.IntVar(&h.Status, "status", 503, "status of -block-every blocks")
	garbage := fs.Bool("garbage", false, "answer the first event of each connection with garbage (UDS only)")
	oversize := fs.Bool("oversize", false, "answer the first event of each connection with a 32 MiB length prefix (UDS only)")
	pause := fs.Bool("pause", false, "send flow-control pause to every proxy connection")
	resumeAfter := fs.Duration("resume-after", 0, "with -pause: resume after this long")
	unhealthy := fs.Bool("unhealthy", false, "report health state unhealthy")
	healthyAfter := fs.Duration("healthy-after", 0, "with -unhealthy: report healthy again after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h.ID = fl.ID
	if *garbage || *oversize {
		if fl.UDS == "" {
			return errors.New("-garbage and -oversize need -uds")
		}
		_ = os.Remove(fl.UDS)
		ln, err := net.Listen("unix", fl.UDS)
		if err != nil {
			return fmt.Errorf("faulty: %w", err)
		}
		defer os.Remove(fl.UDS)
		mode := "garbage"
		if *oversize {
			mode = "oversize"
		}
		return (&Breaker{Mode: mode, ID: fl.ID}).Serve(ctx, ln)
	}
	ctl := sdk.NewController()
	if *pause {
		ctl.Pause()
		if *resumeAfter > 0 {
			t := time.AfterFunc(*resumeAfter, ctl.Resume)
			defer t.Stop()
		}
	}
	if *unhealthy {
		ctl.SetHealth(protocol.HealthUnhealthy, "faulty agent reports unhealthy")
		if *healthyAfter > 0 {
			t := time.AfterFunc(*healthyAfter, func() { ctl.SetHealth(protocol.HealthHealthy, "faulty agent recovered") })
			defer t.Stop()
		}
	}
	return fl.Serve(ctx, h, sdk.Options{Controller: ctl, Events: []protocol.EventType{protocol.EventRequestHeaders,
		protocol.EventRequestBodyChunk, protocol.EventResponseHeaders, protocol.EventResponseBodyChunk}})
}

func main() { agentrun.Main(run) }
