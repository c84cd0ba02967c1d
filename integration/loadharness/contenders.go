package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Contender kinds.
const (
	KindDirect   = "direct"
	KindSentinel = "sentinel"
	KindCaddy    = "caddy"
	KindNginx    = "nginx"
)

// ProxyConfig is what every proxy under test is configured with, in its
// own config language.
type ProxyConfig struct {
	// Upstreams are the backend addresses, balanced round-robin.
	Upstreams []string
	// Policy, when set, is Sentinel's load-balancing algorithm for them
	// (`load-balancing "peak_ewma"`); the default is round-robin.
	Policy string
	// CertFile and KeyFile are the TLS listener's certificate and key.
	CertFile, KeyFile string
	// MaxAttempts > 1 retries failed requests on another backend.
	MaxAttempts int
	// RetryStatuses are response statuses that are retried too.
	RetryStatuses []int
	// HealthCheck enables an active HTTP health check of /health each second.
	HealthCheck bool
	// Breaker enables passive health checks (3 failures: out for 2 s).
	Breaker bool
	// APIToken, when set, enables Sentinel's control-plane API with this
	// bearer token.
	APIToken string
	// KeepAlive is the number of idle keep-alive connections kept per
	// upstream (the same for every proxy; 0 means 256).
	KeepAlive int
	// AgentSocket, when set, puts the agent "echo" (protocol v2 on this
	// Unix socket, fail-open, quick reconnects) in front of the route.
	AgentSocket string
	// Variant changes an innocuous setting, so that a reload of the
	// config is a real change.
	Variant int
}

func (pc ProxyConfig) keepAlive() int {
	if pc.KeepAlive > 0 {
		return pc.KeepAlive
	}
	return 256
}

// Contender is one server under test, with its addresses.
type Contender struct {
	// Name is the contender's label in results ("caddy-control" is a
	// second stock Caddy).
	Name string
	// Kind is KindDirect, KindSentinel, KindCaddy or KindNginx.
	Kind string
	// HTTPAddr is the plain HTTP/1.1 listener.
	HTTPAddr string
	// TLSAddr is the HTTPS listener with HTTP/2 ("" for direct).
	TLSAddr string
	// AdminAddr is Caddy's admin API (Sentinel and Caddy).
	AdminAddr string
	// APIAddr is Sentinel's control-plane API when enabled.
	APIAddr string
	// Dir holds the contender's config and logs.
	Dir string
	// ConfigPath is the config file.
	ConfigPath string
	// Proc is the server process (nil for direct).
	Proc *Process
}

// Stop ends the contender's process.
func (c *Contender) Stop() {
	if c.Proc != nil {
		c.Proc.Stop(10 * time.Second)
	}
}

// WriteCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost into dir and returns the file paths.
func WriteCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "sentinel-loadharness"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("create certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("marshal key: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", fmt.Errorf("write cert: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", fmt.Errorf("write key: %w", err)
	}
	return certFile, keyFile, nil
}

// SentinelKDL renders the sentinel.kdl of a contender.
func SentinelKDL(c *Contender, pc ProxyConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "system { caddy-admin %q; }\n\n", c.AdminAddr)
	fmt.Fprintf(&b, "limits { max-idle-connections-per-upstream %d; }\n\n", pc.keepAlive())
	b.WriteString("listeners {\n")
	fmt.Fprintf(&b, "    listener \"http\" {\n        address %q\n        protocol \"http\"\n", c.HTTPAddr)
	if pc.Variant%2 == 1 {
		b.WriteString("        request-timeout-secs 61\n")
	}
	b.WriteString("    }\n")
	fmt.Fprintf(&b, "    listener \"tls\" {\n        address %q\n        protocol \"https\"\n        tls { cert-file %q; key-file %q; }\n    }\n}\n\n", c.TLSAddr, pc.CertFile, pc.KeyFile)
	if pc.AgentSocket != "" {
		fmt.Fprintf(&b, `agents {
    agent "echo" {
        unix-socket %q
        events "request_headers"
        timeout-ms 500
        failure-mode "open"
        circuit-breaker { failure-threshold 5; timeout-seconds 1; }
        pool { reconnect-backoff-ms 100; max-reconnect-backoff-ms 500; }
    }
}

filters {
    filter "echo" { type "agent"; agent "echo"; phase "request"; }
}

`, pc.AgentSocket)
	}
	b.WriteString("routes {\n    route \"all\" {\n        matches { path-prefix \"/\"; }\n        upstream \"backend\"\n")
	if pc.AgentSocket != "" {
		b.WriteString("        filters \"echo\"\n")
	}
	if pc.MaxAttempts > 1 {
		fmt.Fprintf(&b, "        retry-policy {\n            max-attempts %d\n", pc.MaxAttempts)
		if len(pc.RetryStatuses) > 0 {
			b.WriteString("            retryable-status-codes")
			for _, s := range pc.RetryStatuses {
				fmt.Fprintf(&b, " %d", s)
			}
			b.WriteString("\n")
		}
		b.WriteString("        }\n")
	}
	b.WriteString("    }\n}\n\nupstreams {\n    upstream \"backend\" {\n")
	for _, u := range pc.Upstreams {
		fmt.Fprintf(&b, "        target %q\n", u)
	}
	if pc.Policy != "" {
		fmt.Fprintf(&b, "        load-balancing %q\n", pc.Policy)
	}
	if pc.HealthCheck {
		b.WriteString("        health-check {\n            type \"http\" {\n                path \"/health\"\n                expected-status 200\n            }\n            interval-secs 1\n        }\n")
	}
	if pc.Breaker {
		b.WriteString("        circuit-breaker {\n            failure-threshold 3\n            timeout-seconds 2\n        }\n")
	}
	b.WriteString("    }\n}\n")
	if pc.APIToken != "" {
		fmt.Fprintf(&b, "\nadmin-api {\n    address %q\n    allowed-target-networks \"127.0.0.0/8\"\n    auth {\n        type \"bearer\"\n        token %q\n    }\n}\n", c.APIAddr, pc.APIToken)
	}
	return b.String()
}

// Caddyfile renders the stock Caddy equivalent of SentinelKDL (plain
// proxy: round-robin over the upstreams, HTTP/1.1 on the plain listener,
// HTTP/1.1 and HTTP/2 on the TLS one, keep-alive to the upstreams).
func Caddyfile(c *Contender, pc ProxyConfig) string {
	_, hp, _ := net.SplitHostPort(c.HTTPAddr)
	_, tp, _ := net.SplitHostPort(c.TLSAddr)
	proxy := fmt.Sprintf("\treverse_proxy %s {\n\t\tlb_policy round_robin\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host %d\n\t\t}\n\t}\n",
		strings.Join(pc.Upstreams, " "), pc.keepAlive())
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	auto_https off
	servers {
		protocols h1 h2
	}
}

http://:%s {
	bind 127.0.0.1
%s}

https://:%s {
	bind 127.0.0.1
	tls %s %s
%s}
`, c.AdminAddr, hp, proxy, tp, pc.CertFile, pc.KeyFile, proxy)
}

// NginxConf renders the NGINX equivalent: as many workers as Caddy's
// GOMAXPROCS, keep-alive to the upstreams, no access log, no per
// connection request limit, responses buffered in memory only.
func NginxConf(c *Contender, pc ProxyConfig) string {
	var ups strings.Builder
	for _, u := range pc.Upstreams {
		fmt.Fprintf(&ups, "        server %s;\n", u)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	return fmt.Sprintf(`%sworker_processes %d;
worker_rlimit_nofile 65535;
pid %s;
error_log %s warn;
events {
    worker_connections 16384;
}
http {
    access_log off;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    proxy_buffers 16 16k;
    proxy_max_temp_file_size 0;
    upstream backend {
%s        keepalive %d;
        keepalive_requests 10000000;
    }
    server {
        listen %s;
        listen %s ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, user, runtime.GOMAXPROCS(0), filepath.Join(c.Dir, "nginx.pid"), filepath.Join(c.Dir, "error.log"),
		filepath.Join(c.Dir, "tmp-body"), filepath.Join(c.Dir, "tmp-proxy"), filepath.Join(c.Dir, "tmp-fcgi"),
		filepath.Join(c.Dir, "tmp-uwsgi"), filepath.Join(c.Dir, "tmp-scgi"),
		ups.String(), pc.keepAlive(), c.HTTPAddr, c.TLSAddr, pc.CertFile, pc.KeyFile)
}

// NewContender allocates the addresses and directory of a contender.
func NewContender(name, kind, parent string) (*Contender, error) {
	addrs, err := freeAddrs(4)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("contender dir: %w", err)
	}
	return &Contender{Name: name, Kind: kind, HTTPAddr: addrs[0], TLSAddr: addrs[1], AdminAddr: addrs[2], APIAddr: addrs[3], Dir: dir}, nil
}

// WriteConfig writes the contender's config file for pc.
func (c *Contender) WriteConfig(pc ProxyConfig) error {
	var name, text string
	switch c.Kind {
	case KindSentinel:
		name, text = "sentinel.kdl", SentinelKDL(c, pc)
	case KindCaddy:
		name, text = "Caddyfile", Caddyfile(c, pc)
	case KindNginx:
		name, text = "nginx.conf", NginxConf(c, pc)
	default:
		return nil
	}
	c.ConfigPath = filepath.Join(c.Dir, name)
	if err := os.WriteFile(c.ConfigPath, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s config: %w", c.Name, err)
	}
	return nil
}

// Start writes the config and starts the contender's server, waiting until
// its listeners accept connections.
func (c *Contender) Start(bins Binaries, pc ProxyConfig) error {
	if c.Kind == KindDirect {
		c.HTTPAddr, c.TLSAddr = pc.Upstreams[0], ""
		return nil
	}
	if err := c.WriteConfig(pc); err != nil {
		return err
	}
	env := []string{"XDG_DATA_HOME=" + c.Dir, "XDG_CONFIG_HOME=" + c.Dir}
	logPath := filepath.Join(c.Dir, "server.log")
	var err error
	switch c.Kind {
	case KindSentinel:
		bin := bins.Sentinel
		if c.Name == "sentinel-alt" {
			bin = bins.SentinelAlt
		}
		c.Proc, err = StartProcess(c.Name, logPath, append(env, bins.SentinelEnv...), bin, "run", "--config", c.ConfigPath)
	case KindCaddy:
		c.Proc, err = StartProcess(c.Name, logPath, env, bins.Caddy, "run", "--config", c.ConfigPath, "--adapter", "caddyfile")
	case KindNginx:
		bin, lerr := exec.LookPath("nginx")
		if lerr != nil {
			return fmt.Errorf("nginx: %w", lerr)
		}
		c.Proc, err = StartProcess(c.Name, logPath, nil, bin, "-p", c.Dir+"/", "-e", filepath.Join(c.Dir, "error.log"),
			"-c", c.ConfigPath, "-g", "daemon off;")
	default:
		return fmt.Errorf("unknown contender kind %q", c.Kind)
	}
	if err != nil {
		return err
	}
	for _, a := range []string{c.HTTPAddr, c.TLSAddr} {
		if err := c.Proc.WaitTCP(a, 60*time.Second); err != nil {
			c.Stop()
			return err
		}
	}
	if pc.APIToken != "" && c.Kind == KindSentinel {
		if err := c.Proc.WaitTCP(c.APIAddr, 30*time.Second); err != nil {
			c.Stop()
			return err
		}
	}
	return nil
}

// Addr returns the contender's address for a scenario protocol.
func (c *Contender) Addr(tls bool) string {
	if tls {
		return c.TLSAddr
	}
	return c.HTTPAddr
}
