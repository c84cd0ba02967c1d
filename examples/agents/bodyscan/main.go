// Command bodyscan is an example Sentinel agent that inspects request
// bodies in streaming mode, chunk by chunk, and blocks a request when a
// pattern appears — also across chunk boundaries (it keeps the last
// len(pattern)-1 bytes of each request). While nothing matched and more
// chunks follow it answers allow with needs_more.
//
//	go run ./examples/agents/bodyscan -uds /tmp/scan.sock -pattern "DROP TABLE" -pattern "<script"
//
// The agent's config block may add {"patterns": [...]}.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agentrun"
)

// Scanner blocks request bodies containing any pattern (case-insensitive).
type Scanner struct {
	sdk.Base
	mu       sync.Mutex
	patterns [][]byte
	maxLen   int
	tails    map[string][]byte
}

// Interface guard.
var _ sdk.Handler = (*Scanner)(nil)

// New returns a scanner for patterns.
func New(patterns []string) *Scanner {
	s := &Scanner{tails: map[string][]byte{}}
	s.add(patterns)
	return s
}

func (s *Scanner) add(patterns []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range patterns {
		if p == "" {
			continue
		}
		s.patterns = append(s.patterns, bytes.ToLower([]byte(p)))
		if len(p) > s.maxLen {
			s.maxLen = len(p)
		}
	}
}

// OnConfigure adds {"patterns": [...]}.
func (s *Scanner) OnConfigure(_ context.Context, c *protocol.Configure) error {
	if len(c.Config) == 0 || string(c.Config) == "null" {
		return nil
	}
	var cfg struct {
		Patterns []string `json:"patterns"`
	}
	if err := sdk.DecodeConfig(c.Config, &cfg); err != nil {
		return fmt.Errorf("bodyscan: %w", err)
	}
	s.add(cfg.Patterns)
	return nil
}

// Scan feeds one chunk of request corr and reports the matched pattern
// ("" = none so far). last releases the request's state.
func (s *Scanner) Scan(corr string, chunk []byte, last bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	window := append(s.tails[corr], bytes.ToLower(chunk)...)
	hit := ""
	for _, p := range s.patterns {
		if bytes.Contains(window, p) {
			hit = string(p)
			break
		}
	}
	if hit != "" || last {
		delete(s.tails, corr)
		return hit
	}
	keep := s.maxLen - 1
	if keep > len(window) {
		keep = len(window)
	}
	if keep < 0 {
		keep = 0
	}
	s.tails[corr] = append([]byte(nil), window[len(window)-keep:]...)
	return ""
}

// Pending returns the number of requests with buffered state.
func (s *Scanner) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tails)
}

// OnRequestBody scans the chunk.
func (s *Scanner) OnRequestBody(_ context.Context, ev *protocol.RequestBodyChunk) *protocol.Response {
	if hit := s.Scan(ev.CorrelationID, ev.Data, ev.IsLast); hit != "" {
		return &protocol.Response{
			Decision: protocol.Decision{Kind: protocol.Block, Status: 403, Body: "request body rejected",
				Headers: map[string]string{"X-Bodyscan-Match": hit}},
			Audit: protocol.Audit{Tags: []string{"bodyscan"}, RuleIDs: []string{hit}},
		}
	}
	return &protocol.Response{NeedsMore: !ev.IsLast}
}

// OnCancel drops the request's state.
func (s *Scanner) OnCancel(_ context.Context, c *protocol.Cancel) { s.drop(c.CorrelationID) }

// OnRequestComplete drops the request's state.
func (s *Scanner) OnRequestComplete(_ context.Context, ev *protocol.RequestComplete) {
	s.drop(ev.CorrelationID)
}

func (s *Scanner) drop(corr string) {
	s.mu.Lock()
	delete(s.tails, corr)
	s.mu.Unlock()
}

type listFlag []string

// String implements flag.Value.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bodyscan", flag.ContinueOnError)
	var f agentrun.Flags
	f.Bind(fs, "bodyscan")
	var patterns listFlag
	fs.Var(&patterns, "pattern", "block bodies containing this text, case-insensitive (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return f.Serve(ctx, New(patterns), sdk.Options{
		Events: []protocol.EventType{protocol.EventRequestBodyChunk},
	})
}

func main() { agentrun.Main(run) }
