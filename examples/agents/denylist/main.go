// Command denylist is an example Sentinel agent that blocks requests by
// client IP (address or CIDR), path prefix or header value, answering 403
// with a body and headers.
//
//	go run ./examples/agents/denylist -uds /tmp/deny.sock -ip 203.0.113.0/24 -path /admin -header "user-agent=badbot"
//
// The agent's config block may add {"ips": [...], "path_prefixes": [...],
// "headers": {"name": "value"}, "status": 403, "body": "...",
// "allow_ambiguous_encodings": false}; in KDL a one-element list is
// written `path_prefixes (list)"/admin"`. A config it cannot read fails
// the proxy's handshake with the reason (the proxy logs it).
//
// Paths are judged on the normalised path Sentinel sends in `uri` (the
// one route matching uses: /admin%2Fx, //admin, /x/../admin are all
// /admin…). Requests whose path as received (`raw_uri`) hides structure
// in percent-encoding — an encoded dot, slash, backslash, percent sign or
// NUL, which a backend may decode differently — are refused with 400
// unless allow_ambiguous_encodings (flag -allow-ambiguous) is set.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
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
	// AllowAmbiguousEncodings lets through paths that spell a dot, a
	// slash, a backslash, a percent sign or NUL in percent-encoding.
	AllowAmbiguousEncodings bool `json:"allow_ambiguous_encodings"`
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
	if err := sdk.DecodeConfig(c.Config, &add); err != nil {
		return fmt.Errorf("denylist: %w", err)
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
	r.AllowAmbiguousEncodings = r.AllowAmbiguousEncodings || add.AllowAmbiguousEncodings
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

// ambiguous are the percent-encodings that hide path structure: a dot
// (`%2e%2e` is `..`), a slash, a backslash, a percent sign (decoded
// twice by some backends) and NUL.
var ambiguous = []string{"%2e", "%2f", "%5c", "%25", "%00"}

// ambiguousPath reports the first ambiguous encoding in the path of a
// request-target ("" = none).
func ambiguousPath(target string) string {
	p, _, _ := strings.Cut(target, "?")
	p = strings.ToLower(p)
	for _, a := range ambiguous {
		if strings.Contains(p, a) {
			return a
		}
	}
	return ""
}

// requestPath is the decoded normalised path of the event (Sentinel
// sends the normalised path, canonically encoded, in URI).
func requestPath(ev *protocol.RequestHeaders) string {
	p, _, _ := strings.Cut(ev.URI, "?")
	if dec, err := url.PathUnescape(p); err == nil {
		return dec
	}
	return p
}

// match returns why the request is denied ("" = allowed) and the status.
func (d *Denylist) match(ev *protocol.RequestHeaders) (string, int, Rules) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if a, ok := clientAddr(ev.Metadata.ClientIP); ok {
		for _, p := range d.prefixes {
			if p.Contains(a) {
				return "ip:" + p.String(), d.rules.Status, d.rules
			}
		}
	}
	if !d.rules.AllowAmbiguousEncodings {
		raw := ev.RawURI
		if raw == "" { // a proxy that does not send raw_uri
			raw = ev.URI
		}
		if a := ambiguousPath(raw); a != "" {
			return "ambiguous-encoding:" + a, 400, d.rules
		}
	}
	path := requestPath(ev)
	for _, p := range d.rules.PathPrefixes {
		if p != "" && strings.HasPrefix(path, p) {
			return "path:" + p, d.rules.Status, d.rules
		}
	}
	for name, want := range d.rules.Headers {
		for k, vs := range ev.Headers {
			if strings.ToLower(k) != name {
				continue
			}
			for _, v := range vs {
				if strings.Contains(strings.ToLower(v), want) {
					return "header:" + name, d.rules.Status, d.rules
				}
			}
		}
	}
	return "", 0, d.rules
}

// OnRequestHeaders blocks matching requests.
func (d *Denylist) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	why, status, r := d.match(ev)
	if why == "" {
		return nil
	}
	body := r.Body
	if status == 400 && strings.HasPrefix(why, "ambiguous-encoding:") {
		body = "Ambiguous path encoding"
	}
	return &protocol.Response{
		Decision: protocol.Decision{Kind: protocol.Block, Status: status, Body: body,
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
	allowAmbiguous := fs.Bool("allow-ambiguous", false, "let through paths with percent-encoded dots, slashes, backslashes, percent signs or NUL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := Rules{IPs: ips, PathPrefixes: paths, Headers: map[string]string{}, Status: *status, Body: *body, AllowAmbiguousEncodings: *allowAmbiguous}
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
