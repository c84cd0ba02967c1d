package sentinelapp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(HTTPCheck{})
	caddy.RegisterModule(TCPCheck{})
	caddy.RegisterModule(GRPCCheck{})
}

// Checker is a module of the sentinel.health_checks namespace: one
// active check of a target. The sentinel app runs it every interval with
// a context that ends at the check's timeout, and counts the results
// against the thresholds.
type Checker interface {
	// Check checks the target at addr (host:port); nil means healthy.
	Check(ctx context.Context, addr string) error
}

// HTTPCheck GETs a path of the target: healthy on the expected status.
type HTTPCheck struct {
	// Path is the HTTP path to GET (default "/health").
	Path string `json:"path,omitempty"`
	// Host is the Host header.
	Host string `json:"host,omitempty"`
	// ExpectStatus is the status that means healthy (default: any 2xx).
	ExpectStatus int `json:"expect_status,omitempty"`
	// TLS, when set, makes the check use HTTPS.
	TLS *HealthTLS `json:"tls,omitempty"`

	client *http.Client
	scheme string
}

// CaddyModule returns the Caddy module information.
func (HTTPCheck) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.health_checks.http", New: func() caddy.Module { return new(HTTPCheck) }}
}

// Provision applies the defaults and reads the TLS files.
func (c *HTTPCheck) Provision(caddy.Context) error {
	if c.Path == "" {
		c.Path = "/health"
	}
	if !strings.HasPrefix(c.Path, "/") {
		return fmt.Errorf("path %q must start with /", c.Path)
	}
	tlsConf, err := c.TLS.load()
	if err != nil {
		return err
	}
	c.scheme = "http://"
	if tlsConf != nil {
		c.scheme = "https://"
	}
	c.client = &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil, TLSClientConfig: tlsConf, DialContext: guardedDial},
	}
	return nil
}

// Check GETs the path.
func (c *HTTPCheck) Check(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+addr+c.Path, nil)
	if err != nil {
		return err
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	req.Header.Set("User-Agent", "sentinel-health-check")
	res, err := c.client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if c.ExpectStatus != 0 && res.StatusCode != c.ExpectStatus || c.ExpectStatus == 0 && (res.StatusCode < 200 || res.StatusCode > 299) {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// TCPCheck connects to the target: healthy when the connection opens.
type TCPCheck struct{}

// CaddyModule returns the Caddy module information.
func (TCPCheck) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.health_checks.tcp", New: func() caddy.Module { return new(TCPCheck) }}
}

// Check connects and closes the connection.
func (TCPCheck) Check(ctx context.Context, addr string) error {
	conn, err := guardedDial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// guardedDial dials addr and applies the dial-time target policy check
// ctx carries (registry.GuardContext: a target added through the API
// with a host name may not resolve to an address the API refuses).
func guardedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := registry.CheckDialIn(ctx, conn.RemoteAddr()); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// GRPCCheck asks the target's grpc.health.v1 service: healthy when it
// answers SERVING.
type GRPCCheck struct {
	// Service is the service name to check ("" = the server).
	Service string `json:"service,omitempty"`
	// TLS, when set, makes the check use TLS.
	TLS *HealthTLS `json:"tls,omitempty"`

	creds credentials.TransportCredentials
}

// CaddyModule returns the Caddy module information.
func (GRPCCheck) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.health_checks.grpc", New: func() caddy.Module { return new(GRPCCheck) }}
}

// Provision reads the TLS files.
func (c *GRPCCheck) Provision(caddy.Context) error {
	tlsConf, err := c.TLS.load()
	if err != nil {
		return err
	}
	c.creds = insecure.NewCredentials()
	if tlsConf != nil {
		c.creds = credentials.NewTLS(tlsConf)
	}
	return nil
}

// Check calls grpc.health.v1.Health/Check.
func (c *GRPCCheck) Check(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.creds),
		grpc.WithContextDialer(func(dctx context.Context, a string) (net.Conn, error) {
			conn, err := guardedDial(dctx, "tcp", a)
			if err != nil {
				return nil, err
			}
			// The connection's context is not the check's: apply its
			// dial check here.
			if err := registry.CheckDialIn(ctx, conn.RemoteAddr()); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return conn, nil
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.Service})
	if err != nil {
		return err
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc health: %s", res.GetStatus())
	}
	return nil
}

// load is the tls.Config of t, nil without TLS.
func (t *HealthTLS) load() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	return t.config()
}

// builtin returns the unprovisioned check module of type (without check):
// http (the default), tcp or grpc.
func (hc *HealthCheck) builtin() (caddy.Module, error) {
	switch hc.Type {
	case "", "http":
		hc.Type = "http"
		return &HTTPCheck{Path: hc.Path, Host: hc.Host, ExpectStatus: hc.ExpectStatus, TLS: hc.TLS}, nil
	case "tcp":
		return &TCPCheck{}, nil
	case "grpc":
		return &GRPCCheck{Service: hc.Service, TLS: hc.TLS}, nil
	}
	return nil, fmt.Errorf("unknown type %q (http, tcp, grpc; other modules of sentinel.health_checks go in check)", hc.Type)
}

// builtinKey identifies the settings of a check of type: the upstreams of
// a config whose checks have the same share one provisioned check (its
// HTTP client, its TLS configuration), instead of one each (10,000
// upstreams made 10,000 http transports; issue 13.8).
type builtinKey struct {
	typ, path, host, service string
	expectStatus             int
	tls                      HealthTLS
	hasTLS                   bool
}

// loadCheck returns the provisioned check of hc: a built-in type
// (builtin) made and provisioned directly, the one of shared with the
// same settings if any (shared may be nil); a check module through
// Caddy's loading.
func loadCheck(ctx caddy.Context, hc *HealthCheck, shared map[builtinKey]Checker) (Checker, error) {
	if hc.CheckRaw != nil {
		if hc.Type != "" || hc.Path != "" || hc.Host != "" || hc.ExpectStatus != 0 || hc.Service != "" || hc.TLS != nil {
			return nil, fmt.Errorf("give either check or type/path/host/expect_status/service/tls, not both")
		}
		mod, err := ctx.LoadModule(hc, "CheckRaw")
		if err != nil {
			return nil, err
		}
		check, ok := mod.(Checker)
		if !ok {
			return nil, fmt.Errorf("module %T is not a health check", mod)
		}
		return check, nil
	}
	mod, err := hc.builtin()
	if err != nil {
		return nil, err
	}
	key := builtinKey{typ: hc.Type, path: hc.Path, host: hc.Host, service: hc.Service, expectStatus: hc.ExpectStatus}
	if hc.TLS != nil {
		key.tls, key.hasTLS = *hc.TLS, true
	}
	if c, ok := shared[key]; ok {
		return c, nil
	}
	// As ctx.LoadModule would (the built-in checks neither log nor need
	// a cleanup), without encoding the settings and decoding them again.
	if p, ok := mod.(caddy.Provisioner); ok {
		if err := p.Provision(ctx); err != nil {
			return nil, fmt.Errorf("loading module '%s': provision %s: %v", hc.Type, mod.CaddyModule().ID, err)
		}
	}
	c := mod.(Checker)
	if shared != nil {
		shared[key] = c
	}
	return c, nil
}

// Interface guards
var (
	_ Checker           = (*HTTPCheck)(nil)
	_ Checker           = (*TCPCheck)(nil)
	_ Checker           = (*GRPCCheck)(nil)
	_ caddy.Provisioner = (*HTTPCheck)(nil)
	_ caddy.Provisioner = (*GRPCCheck)(nil)
)
