package sentinelapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

// HealthCheck configures the active checks of an upstream's targets.
// The check itself is a module of sentinel.health_checks (http, tcp,
// grpc, or any other registered), given in Check; the flat fields Type,
// Path, Host, ExpectStatus, Service and TLS are the shorthand for the
// three built-in ones (what the KDL adapter writes).
type HealthCheck struct {
	// CheckRaw is the check module, named by its "type":
	// `{"type":"http","path":"/ready"}`. Instead of the flat fields.
	CheckRaw json.RawMessage `json:"check,omitempty" caddy:"namespace=sentinel.health_checks inline_key=type"`
	// Type is "http" (default), "tcp" or "grpc" (grpc.health.v1).
	Type string `json:"type,omitempty"`
	// Path is the HTTP path to GET (default "/health").
	Path string `json:"path,omitempty"`
	// Host is the Host header of HTTP checks.
	Host string `json:"host,omitempty"`
	// ExpectStatus is the HTTP status that means healthy (default: any
	// 2xx).
	ExpectStatus int `json:"expect_status,omitempty"`
	// Service is the gRPC service name to check ("" = the server).
	Service string `json:"service,omitempty"`
	// Interval between checks (default 10s).
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout of one check (default 5s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Healthy is how many passes in a row make an unhealthy target
	// healthy (default 2).
	Healthy int `json:"healthy_threshold,omitempty"`
	// Unhealthy is how many failures in a row make a target unhealthy
	// (default 3).
	Unhealthy int `json:"unhealthy_threshold,omitempty"`
	// TLS, when set, makes http and grpc checks use TLS, as the proxy
	// does for an upstream with a tls block.
	TLS *HealthTLS `json:"tls,omitempty"`
}

// HealthTLS is the TLS of health checks.
type HealthTLS struct {
	// ServerName is the SNI and the name verified in the certificate.
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify skips certificate verification.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// CAFile is a PEM file of the CAs to trust (default: the system's).
	CAFile string `json:"ca_file,omitempty"`
}

// config builds the tls.Config of the checks.
func (t *HealthTLS) config() (*tls.Config, error) {
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, as for the proxy
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("health check CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("health check CA %s: no certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// checker runs the checks of one upstream.
type checker struct {
	upstream string
	hc       HealthCheck
	check    Checker
	reg      *registry.Registry
	logger   *zap.Logger
	mu       sync.Mutex
	streak   map[string]int // address → consecutive results (+ pass, - fail)
}

func newChecker(ctx caddy.Context, upstream string, hc HealthCheck, reg *registry.Registry, logger *zap.Logger) (*checker, error) {
	return newSharedChecker(ctx, upstream, hc, reg, logger, nil)
}

// newSharedChecker is newChecker, taking a built-in check from shared
// when one with the same settings is there (loadCheck).
func newSharedChecker(ctx caddy.Context, upstream string, hc HealthCheck, reg *registry.Registry, logger *zap.Logger, shared map[builtinKey]Checker) (*checker, error) {
	check, err := loadCheck(ctx, &hc, shared)
	if err != nil {
		return nil, err
	}
	hc.CheckRaw = nil
	if hc.Interval <= 0 {
		hc.Interval = caddy.Duration(10 * time.Second)
	}
	if hc.Timeout <= 0 {
		hc.Timeout = caddy.Duration(5 * time.Second)
	}
	if hc.Healthy <= 0 {
		hc.Healthy = 2
	}
	if hc.Unhealthy <= 0 {
		hc.Unhealthy = 3
	}
	return &checker{
		upstream: upstream, hc: hc, check: check, reg: reg, logger: logger.With(zap.String("upstream", upstream)),
		streak: map[string]int{},
	}, nil
}

// run checks every target each interval until stop is closed.
func (c *checker) run(stop <-chan struct{}) {
	t := time.NewTicker(time.Duration(c.hc.Interval))
	defer t.Stop()
	c.round(stop)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.round(stop)
		}
	}
}

// round checks all targets of the upstream concurrently.
func (c *checker) round(stop <-chan struct{}) {
	u, ok := c.reg.Get(c.upstream)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	for _, t := range u.Targets {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			err := c.checkTarget(ctx, addr)
			if ctx.Err() != nil && err != nil {
				return // stopping
			}
			c.record(addr, err)
		}(t.Address)
	}
	wg.Wait()
}

// record updates the streak of a target and flips its health at the
// thresholds.
func (c *checker) record(addr string, err error) {
	c.mu.Lock()
	s := c.streak[addr]
	if err == nil {
		s = max(s, 0) + 1
	} else {
		s = min(s, 0) - 1
	}
	c.streak[addr] = s
	c.mu.Unlock()
	switch {
	case err == nil && s >= c.hc.Healthy:
		if c.reg.SetHealth(c.upstream, addr, true) {
			c.logger.Info("target is healthy", zap.String("target", addr))
		}
	case err != nil && -s >= c.hc.Unhealthy:
		if c.reg.SetHealth(c.upstream, addr, false) {
			c.logger.Warn("target is unhealthy", zap.String("target", addr), zap.Error(err))
		}
	}
}

// checkTarget runs one check against a target, within the timeout.
func (c *checker) checkTarget(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.hc.Timeout))
	defer cancel()
	// The target policy holds for the checks of the API's host-name
	// targets too (the checks' dials apply it).
	return c.check.Check(c.reg.GuardContext(ctx, addr), addr)
}
