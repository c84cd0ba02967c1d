package sharedstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// Defaults of the Redis settings (the original's).
const (
	DefaultRedisURL      = "redis://127.0.0.1:6379"
	DefaultRedisPoolSize = 10
	DefaultTimeout       = 50 * time.Millisecond
)

// RedisConfig is how a module reaches a Redis server.
type RedisConfig struct {
	// The server's URL: `redis://[user:password@]host:port[/db]`, or
	// `rediss://` for TLS; `unix:///path` for a socket. Default:
	// `redis://127.0.0.1:6379`. The URL may hold a password: it is never
	// repeated in errors or logs.
	URL string `json:"url,omitempty"`

	// The prefix of every key the module writes, so that several
	// modules and deployments can share one server. The module using
	// the store sets its own default.
	Prefix string `json:"prefix,omitempty"`

	// The number of connections kept to the server. Default: 10.
	PoolSize int `json:"pool_size,omitempty"`

	// The longest one operation may take, connection included; after it
	// the operation fails as if the server were down. Default: 50ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// Validate checks the settings without connecting.
func (c *RedisConfig) Validate() error {
	_, err := c.options()
	return err
}

// options are the go-redis options of c, with the defaults applied.
func (c *RedisConfig) options() (*redis.Options, error) {
	raw := c.URL
	if raw == "" {
		raw = DefaultRedisURL
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		// url.Error repeats the URL, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("redis url: %v", err)
	}
	if c.PoolSize < 0 {
		return nil, fmt.Errorf("redis pool_size %d: must not be negative", c.PoolSize)
	}
	if c.Timeout < 0 {
		return nil, fmt.Errorf("redis timeout %s: must not be negative", time.Duration(c.Timeout))
	}
	opts.PoolSize = c.PoolSize
	if opts.PoolSize == 0 {
		opts.PoolSize = DefaultRedisPoolSize
	}
	timeout := c.timeout()
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	opts.ContextTimeoutEnabled = true
	// One attempt: a retry doubles the time a request waits on a store
	// that is down, and the caller has a fallback.
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.DisableIdentity = true
	return opts, nil
}

func (c *RedisConfig) timeout() time.Duration {
	if c.Timeout > 0 {
		return time.Duration(c.Timeout)
	}
	return DefaultTimeout
}

// Open creates a client with its connection pool; it does not connect
// yet (the first operation does).
func (c *RedisConfig) Open() (*Redis, error) {
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	return &Redis{client: redis.NewClient(opts), prefix: c.Prefix, timeout: c.timeout()}, nil
}

// Redis is a client of a Redis server with its health.
type Redis struct {
	// Health tracks whether the server can be used; set its OnChange
	// before the first Do to hear about outages.
	Health Health

	client  *redis.Client
	prefix  string
	timeout time.Duration
}

// Key is key with the configured prefix.
func (r *Redis) Key(key string) string { return r.prefix + key }

// Do runs op against the server within the configured timeout, unless
// the server is down (ErrUnavailable, at once). Errors of op other than
// redis.Nil (a missing key is an answer) count as the server failing.
func (r *Redis) Do(ctx context.Context, op func(ctx context.Context, c *redis.Client) error) error {
	now := time.Now()
	if !r.Health.Allow(now) {
		return ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := op(ctx, r.client)
	if errors.Is(err, redis.Nil) {
		r.Health.Report(now, nil)
		return err
	}
	if err != nil && ctx.Err() == nil && isAnswer(err) {
		// The server answered with an error (a script error, wrong
		// type): it is up, the operation is wrong.
		r.Health.Report(now, nil)
		return err
	}
	r.Health.Report(now, err)
	return err
}

// isAnswer reports whether err is an error reply of the server rather
// than a failure to reach it.
func isAnswer(err error) bool {
	var re redis.Error
	if errors.As(err, &re) {
		return !errors.Is(err, context.DeadlineExceeded)
	}
	return false
}

// AddHook adds a go-redis hook to the client (instrumentation: tests
// count round trips with it). Call it before the first Do.
func (r *Redis) AddHook(h redis.Hook) { r.client.AddHook(h) }

// Close closes the connection pool.
func (r *Redis) Close() error { return r.client.Close() }
