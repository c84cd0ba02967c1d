package controlapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sentinel-proxy/sentinel/registry"
)

// pki is a test CA with the files of a server certificate.
type pki struct {
	t          *testing.T
	dir        string
	ca         *x509.Certificate
	caKey      *ecdsa.PrivateKey
	caFile     string
	serverCert string
	serverKey  string
	serial     int64
}

// newPKI creates a CA and a server certificate for 127.0.0.1 in dir.
func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Sentinel test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{t: t, dir: dir, ca: ca, caKey: key, serial: 1}
	p.caFile = p.write("ca.pem", "CERTIFICATE", der)
	cert, k := p.issue("server", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	p.serverCert, p.serverKey = cert, k
	return p
}

// write writes a PEM file.
func (p *pki) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue creates a certificate signed by the CA and returns the paths of
// its certificate and key files.
func (p *pki) issue(cn string, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (string, string) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	name := strings.ReplaceAll(cn, " ", "_")
	return p.write(name+".crt", "CERTIFICATE", der), p.write(name+".key", "EC PRIVATE KEY", kder)
}

// client returns an HTTPS client trusting the CA, presenting the client
// certificate cn when it is not "".
func (p *pki) client(certFile, keyFile string) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			p.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir)
	opsCert, opsKey := p.issue("ops-console", nil, nil, x509.ExtKeyUsageClientAuth)
	sanCert, sanKey := p.issue("whatever", []string{"deploy.ops.example"}, nil, x509.ExtKeyUsageClientAuth)
	otherCert, otherKey := p.issue("intruder", []string{"intruder.example"}, nil, x509.ExtKeyUsageClientAuth)

	cfg := Config{
		Listen: ":9901", // not used: httptest listens
		Tokens: []Token{{Name: "viewer", Token: readToken, Scopes: []string{ScopeRead}}},
		TLS: &TLSConfig{
			CertFile: p.serverCert, KeyFile: p.serverKey, ClientCAFile: p.caFile,
			AllowedIdentities: []string{"ops-console", "Deploy.Ops.Example"},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("ClientAuth %v", tlsCfg.ClientAuth)
	}
	reg := registry.New()
	reg.Reconcile(nil, []string{"api"})
	core, logs := observer.New(zapcore.InfoLevel)
	srv, err := New(cfg, reg, zap.New(core), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = tlsCfg
	ts.StartTLS()
	defer ts.Close()

	send := func(c *http.Client, method, path, token, body string) (int, string, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r, _ := http.NewRequest(method, ts.URL+path, rd)
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(r)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	// An allowed client certificate (by CN, then by DNS SAN) is admin.
	ops := p.client(opsCert, opsKey)
	if code, body, err := send(ops, "POST", "/api/v1/upstreams", "", `{"id":"mtls","targets":[{"address":"10.1.1.1:80"}]}`); err != nil || code != 201 {
		t.Fatalf("ops cert: %d %s %v", code, body, err)
	}
	san := p.client(sanCert, sanKey)
	if code, body, err := send(san, "PUT", "/api/v1/routes/api/enabled", "", `{"enabled":false}`); err != nil || code != 200 || reg.RouteFlag("api").Enabled() {
		t.Fatalf("SAN cert: %d %s %v", code, body, err)
	}
	// A certificate of the CA whose identity is not allowed is refused
	// without a token, and the token decides with one.
	other := p.client(otherCert, otherKey)
	if code, _, err := send(other, "GET", "/api/v1/upstreams", "", ""); err != nil || code != 401 {
		t.Fatalf("other cert: %d %v", code, err)
	}
	if code, _, err := send(other, "GET", "/api/v1/upstreams", readToken, ""); err != nil || code != 200 {
		t.Fatalf("other cert with token: %d %v", code, err)
	}
	// With an allowed certificate, a bearer token narrows to its scopes,
	// and a wrong one is refused.
	if code, _, err := send(ops, "DELETE", "/api/v1/upstreams/mtls", readToken, ""); err != nil || code != 403 {
		t.Fatalf("ops cert with read token: %d %v", code, err)
	}
	if code, _, err := send(ops, "DELETE", "/api/v1/upstreams/mtls", "wrong", ""); err != nil || code != 401 {
		t.Fatalf("ops cert with wrong token: %d %v", code, err)
	}
	// Without a client certificate, the handshake fails.
	if _, _, err := send(p.client("", ""), "GET", "/api/v1/upstreams", readToken, ""); err == nil {
		t.Fatal("no client certificate: the request went through")
	}

	entries := logs.All()
	if len(entries) != 5 {
		t.Fatalf("%d audit entries", len(entries))
	}
	m := entries[0].ContextMap()
	if m["who"] != "ops-console" || m["auth"] != "client_certificate" || m["status"] != int64(201) {
		t.Errorf("entry %v", m)
	}
	if m := entries[1].ContextMap(); m["who"] != "deploy.ops.example" {
		t.Errorf("entry %v", m)
	}
	if m := entries[2].ContextMap(); m["auth"] != "none" || m["status"] != int64(401) || entries[2].Message != "control-plane read refused" {
		t.Errorf("entry %v", m)
	}
	if m := entries[3].ContextMap(); m["who"] != "viewer" || m["client_certificate"] != "ops-console" || m["status"] != int64(403) {
		t.Errorf("entry %v", m)
	}
}
