package agentrun

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServeTransports(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent.test"}, DNSNames: []string{"agent.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, keyPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)

	var f Flags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f.Bind(fs, "a")
	addr := testutil.FreeAddr(t)
	if err := fs.Parse([]string{"-grpc", addr, "-tls-cert", cert, "-tls-key", keyPath, "-client-ca", cert, "-v"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.tlsConfig()
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("%v %+v", err, cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, sdk.Base{}, sdk.Options{}) }()
	agenttest.WaitDial(t, "tcp", addr, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Flags{
		{},
		{UDS: "/x", GRPC: "y"},
		{GRPC: addr, TLSCert: cert, TLSKey: cert},
		{GRPC: addr, TLSCert: cert, TLSKey: keyPath, ClientCA: filepath.Join(dir, "none")},
		{GRPC: addr, TLSCert: cert, TLSKey: keyPath, ClientCA: keyPath},
		{Register: filepath.Join(dir, "no.sock")},
	} {
		if err := bad.Serve(context.Background(), sdk.Base{}, sdk.Options{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
