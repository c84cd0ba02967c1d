package sharedstore

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/caddyserver/caddy/v2"
)

// Defaults of the memcached settings (the original's).
const (
	DefaultMemcachedURL      = "memcache://127.0.0.1:11211"
	DefaultMemcachedPoolSize = 10
)

// MemcachedConfig is how a module reaches memcached servers.
type MemcachedConfig struct {
	// The servers: `memcache://host:port`, several separated by commas
	// (`memcache://a:11211,b:11211`; keys are spread over them).
	// `memcached://` is accepted too. Default: `memcache://127.0.0.1:11211`.
	URL string `json:"url,omitempty"`

	// The prefix of every key the module writes. The module using the
	// store sets its own default.
	Prefix string `json:"prefix,omitempty"`

	// The number of idle connections kept per server. Default: 10.
	PoolSize int `json:"pool_size,omitempty"`

	// The longest one operation may take (socket reads and writes,
	// connecting). Default: 50ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// servers parses the URL into host:port addresses.
func (c *MemcachedConfig) servers() ([]string, error) {
	raw := c.URL
	if raw == "" {
		raw = DefaultMemcachedURL
	}
	rest, ok := strings.CutPrefix(raw, "memcache://")
	if !ok {
		rest, ok = strings.CutPrefix(raw, "memcached://")
	}
	if !ok {
		return nil, errors.New("memcached url: must start with memcache:// (or memcached://)")
	}
	var out []string
	for _, s := range strings.Split(strings.TrimSuffix(rest, "/"), ",") {
		s = strings.TrimSpace(s)
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return nil, fmt.Errorf("memcached url: server %d is not host:port", len(out)+1)
		}
		out = append(out, s)
	}
	return out, nil
}

// Validate checks the settings without connecting.
func (c *MemcachedConfig) Validate() error {
	if _, err := c.servers(); err != nil {
		return err
	}
	if c.PoolSize < 0 {
		return fmt.Errorf("memcached pool_size %d: must not be negative", c.PoolSize)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("memcached timeout %s: must not be negative", time.Duration(c.Timeout))
	}
	return nil
}

// Open creates a client; it connects on the first operation.
func (c *MemcachedConfig) Open() (*Memcached, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	servers, _ := c.servers()
	var sl memcache.ServerList
	if err := sl.SetServers(servers...); err != nil {
		return nil, fmt.Errorf("memcached url: %v", err)
	}
	mc := memcache.NewFromSelector(&sl)
	mc.Timeout = time.Duration(c.Timeout)
	if mc.Timeout == 0 {
		mc.Timeout = DefaultTimeout
	}
	mc.MaxIdleConns = c.PoolSize
	if mc.MaxIdleConns == 0 {
		mc.MaxIdleConns = DefaultMemcachedPoolSize
	}
	return &Memcached{client: mc, prefix: c.Prefix}, nil
}

// Memcached is a client of memcached servers with their health.
type Memcached struct {
	// Health tracks whether the servers can be used.
	Health Health

	client *memcache.Client
	prefix string
}

// Key is key with the configured prefix. Memcached keys are at most 250
// bytes without spaces or control characters: callers hash what they do
// not control.
func (m *Memcached) Key(key string) string { return m.prefix + key }

// Do runs op unless the servers are down (ErrUnavailable, at once). The
// replies that are answers (a miss, "not stored", a CAS conflict) do not
// count as failures.
func (m *Memcached) Do(op func(c *memcache.Client) error) error {
	now := time.Now()
	if !m.Health.Allow(now) {
		return ErrUnavailable
	}
	err := op(m.client)
	switch {
	case err == nil, errors.Is(err, memcache.ErrCacheMiss), errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrMalformedKey):
		m.Health.Report(now, nil)
	default:
		m.Health.Report(now, err)
	}
	return err
}

// Close closes the idle connections.
func (m *Memcached) Close() error { return m.client.Close() }
