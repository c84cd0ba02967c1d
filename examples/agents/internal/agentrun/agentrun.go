// Package agentrun holds the command-line plumbing shared by the example
// agents: transport flags (-uds, -grpc, -register) and TLS for gRPC.
package agentrun

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

// Flags are the transport flags every example agent takes.
type Flags struct {
	// UDS is the Unix socket path to serve on.
	UDS string
	// GRPC is the host:port to serve gRPC on.
	GRPC string
	// Register is the proxy registration listener to connect to.
	Register string
	// Token is the registration token.
	Token string
	// ID is the agent id.
	ID string
	// TLSCert and TLSKey serve gRPC over TLS.
	TLSCert string
	// TLSKey is the gRPC server key.
	TLSKey string
	// ClientCA requires client certificates signed by this CA (mTLS).
	ClientCA string
	// Verbose enables debug logging to stderr.
	Verbose bool
}

// Bind registers the flags on fs with defaultID as the -id default.
func (f *Flags) Bind(fs *flag.FlagSet, defaultID string) {
	fs.StringVar(&f.UDS, "uds", "", "serve on this Unix socket path")
	fs.StringVar(&f.GRPC, "grpc", "", "serve gRPC v2 on this host:port")
	fs.StringVar(&f.Register, "register", "", "connect to a proxy registration listener (/path or host:port)")
	fs.StringVar(&f.Token, "token", "", "registration token (-register)")
	fs.StringVar(&f.ID, "id", defaultID, "agent id")
	fs.StringVar(&f.TLSCert, "tls-cert", "", "gRPC server certificate (PEM)")
	fs.StringVar(&f.TLSKey, "tls-key", "", "gRPC server key (PEM)")
	fs.StringVar(&f.ClientCA, "client-ca", "", "require client certificates signed by this CA (mTLS)")
	fs.BoolVar(&f.Verbose, "v", false, "debug logging")
}

// Serve runs h on the chosen transport until ctx ends.
func (f *Flags) Serve(ctx context.Context, h sdk.Handler, opts sdk.Options) error {
	opts.AgentID = f.ID
	if opts.Logger == nil && f.Verbose {
		l, err := zap.NewDevelopment()
		if err == nil {
			opts.Logger = l
		}
	}
	n := 0
	for _, s := range []string{f.UDS, f.GRPC, f.Register} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("exactly one of -uds, -grpc, -register is required")
	}
	switch {
	case f.UDS != "":
		return sdk.ServeUDS(ctx, f.UDS, h, opts)
	case f.GRPC != "":
		if f.TLSCert != "" {
			cfg, err := f.tlsConfig()
			if err != nil {
				return err
			}
			opts.TLS = cfg
		}
		return sdk.ServeGRPC(ctx, f.GRPC, h, opts)
	default:
		return sdk.Register(ctx, f.Register, f.Token, h, opts)
	}
}

func (f *Flags) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.TLSCert, f.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no certificates", f.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Main runs run with a context canceled on SIGINT/SIGTERM and exits 1 on error.
func Main(run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
		stop()
		os.Exit(1)
	}
}
