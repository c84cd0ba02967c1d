package agentrun

import (
	"context"
	"crypto/tls"
	"flag"
	"path/filepath"
	"testing"

	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func TestServeTransports(t *testing.T) {
	dir := t.TempDir()
	cert, keyPath := testutil.WriteCert(t, dir, "agent.test")

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
