// Command echo is an example Sentinel agent: it adds the request header
// X-Echo-Agent: <name> to every request sent upstream and the response
// header X-Echo-Agent-Response: <name> to every response.
//
//	go run ./examples/agents/echo -uds /tmp/echo.sock
//	go run ./examples/agents/echo -grpc 127.0.0.1:50051
//
// The agent's config block may set {"name": "..."}.
package main

import (
	"context"
	"flag"
	"fmt"
	"sync"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agentrun"
)

// Echo tags requests and responses with its name.
type Echo struct {
	sdk.Base
	mu   sync.RWMutex
	name string
}

// Interface guard.
var _ sdk.Handler = (*Echo)(nil)

// OnConfigure accepts {"name": "..."}.
func (e *Echo) OnConfigure(_ context.Context, c *protocol.Configure) error {
	var cfg struct {
		Name string `json:"name"`
	}
	if len(c.Config) == 0 || string(c.Config) == "null" {
		return nil
	}
	if err := sdk.DecodeConfig(c.Config, &cfg); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if cfg.Name != "" {
		e.mu.Lock()
		e.name = cfg.Name
		e.mu.Unlock()
	}
	return nil
}

func (e *Echo) current() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.name
}

// OnRequestHeaders adds X-Echo-Agent.
func (e *Echo) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	return &protocol.Response{
		RequestHeaders: []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-Echo-Agent", Value: e.current()}},
		Audit:          protocol.Audit{Tags: []string{"echo"}},
	}
}

// OnResponseHeaders adds X-Echo-Agent-Response.
func (e *Echo) OnResponseHeaders(_ context.Context, ev *protocol.ResponseHeaders) *protocol.Response {
	return &protocol.Response{ResponseHeaders: []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-Echo-Agent-Response", Value: e.current()}}}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	var f agentrun.Flags
	f.Bind(fs, "echo")
	name := fs.String("name", "echo", "value of the X-Echo-Agent header")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return f.Serve(ctx, &Echo{name: *name}, sdk.Options{
		Events: []protocol.EventType{protocol.EventRequestHeaders, protocol.EventResponseHeaders},
	})
}

func main() { agentrun.Main(run) }
