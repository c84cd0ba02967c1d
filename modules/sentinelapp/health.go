package sentinelapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sentinel-proxy/sentinel/registry"
)

// HealthCheck configures the active checks of an upstream's targets.
type HealthCheck struct {
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
	reg      *registry.Registry
	logger   *zap.Logger
	client   *http.Client
	tlsConf  *tls.Config
	mu       sync.Mutex
	streak   map[string]int // address → consecutive results (+ pass, - fail)
}

func newChecker(upstream string, hc HealthCheck, reg *registry.Registry, logger *zap.Logger) (*checker, error) {
	switch hc.Type {
	case "":
		hc.Type = "http"
	case "http", "tcp", "grpc":
	default:
		return nil, fmt.Errorf("unknown type %q (http, tcp, grpc)", hc.Type)
	}
	if hc.Path == "" {
		hc.Path = "/health"
	}
	if !strings.HasPrefix(hc.Path, "/") {
		return nil, fmt.Errorf("path %q must start with /", hc.Path)
	}
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
	var tlsConf *tls.Config
	if hc.TLS != nil {
		var err error
		if tlsConf, err = hc.TLS.config(); err != nil {
			return nil, err
		}
	}
	return &checker{
		upstream: upstream, hc: hc, reg: reg, logger: logger.With(zap.String("upstream", upstream)),
		client: &http.Client{
			Timeout:       time.Duration(hc.Timeout),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil, TLSClientConfig: tlsConf},
		},
		tlsConf: tlsConf,
		streak:  map[string]int{},
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
			err := c.check(ctx, addr)
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

// check runs one check against a target.
func (c *checker) check(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.hc.Timeout))
	defer cancel()
	switch c.hc.Type {
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case "grpc":
		creds := insecure.NewCredentials()
		if c.tlsConf != nil {
			creds = credentials.NewTLS(c.tlsConf)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.hc.Service})
		if err != nil {
			return err
		}
		if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc health: %s", res.GetStatus())
		}
		return nil
	}
	scheme := "http://"
	if c.tlsConf != nil {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+addr+c.hc.Path, nil)
	if err != nil {
		return err
	}
	if c.hc.Host != "" {
		req.Host = c.hc.Host
	}
	req.Header.Set("User-Agent", "sentinel-health-check")
	res, err := c.client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if c.hc.ExpectStatus != 0 && res.StatusCode != c.hc.ExpectStatus || c.hc.ExpectStatus == 0 && (res.StatusCode < 200 || res.StatusCode > 299) {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}
