package protocol_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// startGRPCAgent runs sdk.ServeGRPCListener until the test ends.
func startGRPCAgent(t testing.TB, h sdk.Handler, opts sdk.Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.ServeGRPCListener(ctx, ln, h, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("grpc agent: %v", err)
		}
	})
	return ln.Addr().String()
}

func dialGRPC(t testing.TB, target string, opts protocol.GRPCOptions) protocol.Client {
	t.Helper()
	c, err := protocol.DialGRPC(ctxT(t, 15*time.Second), target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGRPCH2CAllEventsBothPackages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		served []string
		first  string
		want   string
	}{
		{"both served, default", nil, "", protocol.PackageSentinel},
		{"both served, zentinel first", nil, protocol.PackageZentinel, protocol.PackageZentinel},
		{"zentinel only, fallback", []string{protocol.PackageZentinel}, "", protocol.PackageZentinel},
		{"sentinel only, fallback", []string{protocol.PackageSentinel}, protocol.PackageZentinel, protocol.PackageSentinel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			addr := startGRPCAgent(t, h, sdk.Options{AgentID: "grpc-agent", Events: allEvents, GRPCPackages: tc.served})
			c := dialGRPC(t, "http://"+addr, protocol.GRPCOptions{Package: tc.first, Options: protocol.Options{
				Config: json.RawMessage(`{"mode":"strict"}`), PingInterval: 20 * time.Millisecond}})
			info := c.Info()
			if info.Dialect != protocol.DialectGRPC || info.GRPCPackage != tc.want || info.Capabilities.AgentID != "grpc-agent" ||
				!info.WantsEvent(protocol.EventWebSocketFrame) || info.Encoding != "protobuf" {
				t.Fatalf("info: %+v", info)
			}
			h.mu.Lock()
			cfg := append([]string(nil), h.configs...)
			h.mu.Unlock()
			if len(cfg) != 1 || cfg[0] != `{"mode":"strict"}` {
				t.Fatalf("config via handshake: %q", cfg)
			}
			exerciseAllEvents(t, c, h, true)
			waitFor(t, "grpc pong", func() bool { return !c.Health().LastPong.IsZero() })
			if _, err := c.Call(ctxT(t, 5*time.Second), &protocol.Configure{CorrelationID: "x"}); !errors.Is(err, protocol.ErrUnsupported) {
				t.Fatalf("configure call over grpc: %v", err)
			}
		})
	}
}

func TestGRPCCancelPauseHealth(t *testing.T) {
	h := newTestHandler()
	ctl := sdk.NewController()
	addr := startGRPCAgent(t, h, sdk.Options{Controller: ctl})
	c := dialGRPC(t, addr, protocol.GRPCOptions{Options: protocol.Options{PingInterval: -1}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, reqHeaders("g-slow", "/slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	<-h.started
	if got := <-h.canceledCh; got != "g-slow" {
		t.Fatalf("canceled %q", got)
	}
	if got := <-h.sawCancel; got != "g-slow" {
		t.Fatalf("OnCancel %q", got)
	}
	waitFor(t, "registered", func() bool { return ctl.Connections() == 1 })
	ctl.Pause()
	waitFor(t, "paused", c.Paused)
	if _, err := c.Call(ctxT(t, 5*time.Second), reqHeaders("g-1", "/")); !errors.Is(err, protocol.ErrPaused) {
		t.Fatalf("paused: %v", err)
	}
	ctl.Resume()
	waitFor(t, "resumed", func() bool { return !c.Paused() })
	ctl.SetHealth(protocol.HealthDraining, "bye")
	waitFor(t, "draining", func() bool { return c.Health().State == protocol.HealthDraining })
}

func TestGRPCHandshakeRefusedAndUnreachable(t *testing.T) {
	h := newTestHandler()
	h.rejectCfg = true
	addr := startGRPCAgent(t, h, sdk.Options{})
	_, err := protocol.DialGRPC(ctxT(t, 10*time.Second), "http://"+addr, protocol.GRPCOptions{Options: protocol.Options{Config: json.RawMessage(`{"a":1}`)}})
	if !errors.Is(err, protocol.ErrHandshake) || !strings.Contains(err.Error(), "configuration rejected") {
		t.Fatalf("refused: %v", err)
	}
	_, err = protocol.DialGRPC(ctxT(t, 10*time.Second), "http://"+testutil.FreeAddr(t), protocol.GRPCOptions{Options: protocol.Options{HandshakeTimeout: 2 * time.Second}})
	if !errors.Is(err, protocol.ErrHandshake) {
		t.Fatalf("unreachable: %v", err)
	}
}

// ---------------------------------------------------------------- TLS

type pki struct {
	dir                        string
	ca, serverCert, clientCert string
	serverKey, clientKey       string
	caPool                     *x509.CertPool
	serverPair                 tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)
	p.ca = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("agent.test", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("proxy.test", 3, x509.ExtKeyUsageClientAuth)
	var err2 error
	p.serverPair, err2 = tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err2 != nil {
		t.Fatal(err2)
	}
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGRPCTLSAndMTLS(t *testing.T) {
	p := newPKI(t)
	h := newTestHandler()
	tlsAddr := startGRPCAgent(t, h, sdk.Options{TLS: &tls.Config{Certificates: []tls.Certificate{p.serverPair}, MinVersion: tls.VersionTLS12}})
	c := dialGRPC(t, "https://"+tlsAddr, protocol.GRPCOptions{CAFile: p.ca, ServerName: "agent.test", Options: protocol.Options{PingInterval: -1}})
	if r, err := c.Call(ctxT(t, 10*time.Second), reqHeaders("t-1", "/blocked")); err != nil || r.Decision.Status != 403 {
		t.Fatalf("tls call: %v %+v", err, r)
	}
	// Without the CA the agent's certificate is not trusted.
	if _, err := protocol.DialGRPC(ctxT(t, 10*time.Second), tlsAddr, protocol.GRPCOptions{TLS: true, ServerName: "agent.test", Options: protocol.Options{HandshakeTimeout: 3 * time.Second}}); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
	// tls-insecure skips verification.
	ins := dialGRPC(t, tlsAddr, protocol.GRPCOptions{TLS: true, InsecureSkipVerify: true, Options: protocol.Options{PingInterval: -1}})
	if _, err := ins.Call(ctxT(t, 10*time.Second), reqHeaders("t-2", "/")); err != nil {
		t.Fatal(err)
	}

	mtlsAddr := startGRPCAgent(t, h, sdk.Options{TLS: &tls.Config{Certificates: []tls.Certificate{p.serverPair}, ClientCAs: p.caPool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}})
	m := dialGRPC(t, "https://"+mtlsAddr, protocol.GRPCOptions{CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "agent.test",
		Options: protocol.Options{PingInterval: -1}})
	if r, err := m.Call(ctxT(t, 10*time.Second), reqHeaders("m-1", "/ok")); err != nil || r.CorrelationID() != "m-1" {
		t.Fatalf("mtls call: %v %+v", err, r)
	}
	if _, err := protocol.DialGRPC(ctxT(t, 10*time.Second), "https://"+mtlsAddr, protocol.GRPCOptions{CAFile: p.ca, ServerName: "agent.test",
		Options: protocol.Options{HandshakeTimeout: 3 * time.Second}}); err == nil {
		t.Fatal("mTLS agent accepted a proxy without client certificate")
	}
	for _, bad := range []protocol.GRPCOptions{
		{TLS: true, CAFile: filepath.Join(p.dir, "missing.pem")},
		{TLS: true, CAFile: p.serverKey},
		{TLS: true, CertFile: p.clientCert},
	} {
		if _, err := protocol.DialGRPC(ctxT(t, 10*time.Second), mtlsAddr, bad); err == nil {
			t.Errorf("bad TLS options accepted: %+v", bad)
		}
	}
}
