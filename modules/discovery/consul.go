package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Consul{})
}

// Consul is the discovery `consul`: the instances of a service in
// Consul's catalog, read from its HTTP API (GET
// /v1/health/service/<service>) with blocking queries, so that a change
// in Consul is seen at once. Each instance is a target at its service
// address (the node's address when the service has none) and port,
// weighted by the service's passing weight.
type Consul struct {
	// Address is the URL of the Consul agent or server (default
	// http://127.0.0.1:8500).
	Address string `json:"address,omitempty"`
	// Service is the Consul service name.
	Service string `json:"service,omitempty"`
	// Datacenter is the datacenter to ask (default: the agent's).
	Datacenter string `json:"datacenter,omitempty"`
	// OnlyPassing, when true (default), keeps only the instances whose
	// health checks all pass.
	OnlyPassing *bool `json:"only_passing,omitempty"`
	// Tags keep the instances having every one of these tags.
	Tags []string `json:"tags,omitempty"`
	// Token is the ACL token (X-Consul-Token), usually a placeholder such
	// as {env.CONSUL_TOKEN}, replaced when the config loads. It is never
	// logged or put in an error.
	Token string `json:"token,omitempty"`
	// RefreshInterval is the longest wait of one blocking query, and the
	// wait before a retry after a failure (default 30s).
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	token  string
	base   *url.URL
	client *http.Client
	loop   *loop
	// index is the X-Consul-Index of the last answer (0: none).
	index uint64
}

// CaddyModule returns the Caddy module information.
func (Consul) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.consul", New: func() caddy.Module { return new(Consul) }}
}

// Provision checks the settings, replaces the token's placeholders and
// sets up the client.
func (c *Consul) Provision(ctx caddy.Context) error {
	if c.Service == "" {
		return errors.New("consul: service is required")
	}
	addr := c.Address
	if addr == "" {
		addr = "http://127.0.0.1:8500"
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return errors.New("consul: address must be an http:// or https:// URL without credentials (the token goes in token)")
	}
	c.base = u
	c.token = caddy.NewReplacer().ReplaceKnown(c.Token, "")
	c.client = &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}}
	c.loop, err = newLoop(ctx, "consul")
	return err
}

// Discover queries Consul until ctx ends.
func (c *Consul) Discover(ctx context.Context, upstream string, publish func([]registry.TargetSpec)) {
	c.loop.bind(upstream)
	wait := interval(c.RefreshInterval, defaultRefresh)
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		ts, err := c.lookup(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		c.loop.report(ts, err, publish)
		switch {
		case err != nil:
			// Wait before asking again (1s, doubling up to the refresh
			// interval or 30s), from index 0.
			c.index = 0
			backoff = min(max(2*backoff, time.Second), wait, 30*time.Second)
			retry.Reset(backoff)
		case c.index == 0:
			// No blocking query (the server sent no index): poll.
			backoff = 0
			retry.Reset(wait)
		default:
			backoff = 0
			retry.Reset(0)
		}
	}
}

// consulEntry is an entry of /v1/health/service/<service>.
type consulEntry struct {
	Node struct {
		Address string
	}
	Service struct {
		Address string
		Port    int
		Weights struct {
			Passing int
		}
	}
}

// lookup does one (blocking) query.
func (c *Consul) lookup(ctx context.Context, wait time.Duration) ([]registry.TargetSpec, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/health/service/" + url.PathEscape(c.Service)
	q := url.Values{}
	if c.Datacenter != "" {
		q.Set("dc", c.Datacenter)
	}
	if c.OnlyPassing == nil || *c.OnlyPassing {
		q.Set("passing", "true")
	}
	for _, t := range c.Tags {
		q.Add("tag", t)
	}
	if c.index > 0 {
		q.Set("index", strconv.FormatUint(c.index, 10))
		q.Set("wait", strconv.Itoa(max(int(wait/time.Second), 1))+"s")
	}
	u.RawQuery = q.Encode()
	// The client's deadline is the wait plus Consul's jitter (wait/16)
	// and some slack.
	ctx, cancel := context.WithTimeout(ctx, wait+wait/16+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, c.redact(fmt.Errorf("consul: %w", err))
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.redact(fmt.Errorf("consul: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, c.redact(fmt.Errorf("consul: reading the answer: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		// Consul's error bodies are short texts ("ACL not found", "No
		// path to datacenter"); they are cut and redacted.
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return nil, c.redact(fmt.Errorf("consul: service %q: %s: %s", c.Service, resp.Status, msg))
	}
	var entries []consulEntry
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, fmt.Errorf("consul: service %q: the answer is not a list of entries: %w", c.Service, err)
	}
	// Blocking queries: a smaller index than before means a reset (Consul
	// restarted, another server); start again from 0.
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if idx < c.index {
		idx = 0
	}
	c.index = idx
	ts := make([]registry.TargetSpec, 0, len(entries))
	for _, e := range entries {
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address
		}
		ts = append(ts, registry.TargetSpec{
			Address: net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(e.Service.Port)),
			Weight:  max(e.Service.Weights.Passing, 1),
		})
	}
	if err := checkTargets(ts); err != nil {
		return nil, fmt.Errorf("consul: service %q: %w", c.Service, err)
	}
	return ts, nil
}

// Cleanup closes the client's idle connections.
func (c *Consul) Cleanup() error {
	if c.client != nil {
		c.client.CloseIdleConnections()
	}
	return nil
}

// redact removes the token from an error's text.
func (c *Consul) redact(err error) error {
	if c.token == "" || !strings.Contains(err.Error(), c.token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.token, "[redacted]"))
}

// Interface guards
var (
	_ caddy.Provisioner   = (*Consul)(nil)
	_ caddy.CleanerUpper  = (*Consul)(nil)
	_ registry.Discoverer = (*Consul)(nil)
)
