// Command denylist is an example Sentinel agent that blocks requests by
// client IP (address or CIDR), path prefix or header value, answering 403
// with a body and headers.
//
//	go run ./examples/agents/denylist -uds /tmp/deny.sock -ip 203.0.113.0/24 -path /admin -header "user-agent=badbot"
//
// The agent's config block may add {"ips": [...], "path_prefixes": [...],
// "headers": {"name": "value"}, "status": 403, "body": "..."}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agentrun"
)

// Rules are what the denylist blocks.
type Rules struct {
	// IPs are addresses or CIDR prefixes.
	IPs []string `json:"ips"`
	// PathPrefixes block URIs starting with any of them.
	PathPrefixes []string `json:"path_prefixes"`
	// Headers block requests whose header (lower-case name) contains the value (case-insensitive).
	Headers map[string]string `json:"headers"`
	// Status is the block status (default 403).
	Status int `json:"status"`
	// Body is the block body.
	Body string `json:"body"`
}

// Denylist blocks matching requests.
type Denylist struct {
	sdk.Base
	mu       sync.RWMutex
	rules    Rules
	prefixes []netip.Prefix
}

// Interface guard.
var _ sdk.Handler = (*Denylist)(nil)

// New compiles rules.
func New(r Rules) (*Denylist, error) {
	d := &Denylist{}
	return d, d.set(r)
}

func (d *Denylist) set(r Rules) error {
	var ps []netip.Prefix
	for _, s := range r.IPs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("denylist ip %q: %w", s, err)
			}
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("denylist cidr %q: %w", s, err)
		}
		ps = append(ps, p.Masked())
	}
	if r.Status == 0 {
		r.Status = 403
	}
	if r.Body == "" {
		r.Body = "Forbidden by denylist"
	}
	h := make(map[string]string, len(r.Headers))
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = strings.ToLower(v)
	}
	r.Headers = h
	d.mu.Lock()
	d.rules, d.prefixes = r, ps
	d.mu.Unlock()
	return nil
}

// OnConfigure merges the config block's rules into the flag rules.
func (d *Denylist) OnConfigure(_ context.Context, c *protocol.Configure) error {
	if len(c.Config) == 0 || string(c.Config) == "null" {
		return nil
	}
	var add Rules
	if err := json.Unmarshal(c.Config, &add); err != nil {
		return fmt.Errorf("denylist config: %w", err)
	}
	d.mu.RLock()
	r := d.rules
	d.mu.RUnlock()
	r.IPs = append(append([]string(nil), r.IPs...), add.IPs...)
	r.PathPrefixes = append(append([]string(nil), r.PathPrefixes...), add.PathPrefixes...)
	merged := map[string]string{}
	for k, v := range r.Headers {
		merged[k] = v
	}
	for k, v := range add.Headers {
		merged[k] = v
	}
	r.Headers = merged
	if add.Status != 0 {
		r.Status = add.Status
	}
	if add.Body != "" {
		r.Body = add.Body
	}
	return d.set(r)
}

// clientAddr parses "ip", "ip:port" or "[ip]:port".
func clientAddr(s string) (netip.Addr, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap(), err == nil
}

// match returns why the request is denied ("" = allowed).
func (d *Denylist) match(ev *protocol.RequestHeaders) (string, Rules) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if a, ok := clientAddr(ev.Metadata.ClientIP); ok {
		for _, p := range d.prefixes {
			if p.Contains(a) {
				return "ip:" + p.String(), d.rules
			}
		}
	}
	for _, p := range d.rules.PathPrefixes {
		if p != "" && strings.HasPrefix(ev.URI, p) {
			return "path:" + p, d.rules
		}
	}
	for name, want := range d.rules.Headers {
		for k, vs := range ev.Headers {
			if strings.ToLower(k) != name {
				continue
			}
			for _, v := range vs {
				if strings.Contains(strings.ToLower(v), want) {
					return "header:" + name, d.rules
				}
			}
		}
	}
	return "", d.rules
}

// OnRequestHeaders blocks matching requests.
func (d *Denylist) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	why, r := d.match(ev)
	if why == "" {
		return nil
	}
	return &protocol.Response{
		Decision: protocol.Decision{Kind: protocol.Block, Status: r.Status, Body: r.Body,
			Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Denied-By": "denylist", "X-Denied-Reason": why}},
		Audit: protocol.Audit{Tags: []string{"denylist"}, RuleIDs: []string{why}, ReasonCodes: []string{"DENYLISTED"}},
	}
}

type listFlag []string

// String implements flag.Value.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("denylist", flag.ContinueOnError)
	var f agentrun.Flags
	f.Bind(fs, "denylist")
	var ips, paths, headers listFlag
	fs.Var(&ips, "ip", "client IP or CIDR to block (repeatable, comma-separated)")
	fs.Var(&paths, "path", "path prefix to block (repeatable)")
	fs.Var(&headers, "header", "name=value: block when the header contains value (repeatable)")
	status := fs.Int("status", 403, "block status")
	body := fs.String("body", "Forbidden by denylist", "block body")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := Rules{IPs: ips, PathPrefixes: paths, Headers: map[string]string{}, Status: *status, Body: *body}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			return fmt.Errorf("-header %q: want name=value", h)
		}
		r.Headers[k] = v
	}
	d, err := New(r)
	if err != nil {
		return err
	}
	return f.Serve(ctx, d, sdk.Options{})
}

func main() { agentrun.Main(run) }
