package protocol

import (
	"context"
	"errors"
)

// GRPC package names (the package is part of the method path).
const (
	// PackageSentinel is the Sentinel-era proto package.
	PackageSentinel = "sentinel.agent.v2"
	// PackageZentinel is the Zentinel-era proto package.
	PackageZentinel = "zentinel.agent.v2"
)

// GRPCOptions configure DialGRPC.
type GRPCOptions struct {
	Options
	// Package is the proto package to call first (default PackageSentinel);
	// on codes.Unimplemented the client falls back to the other one.
	Package string
	// TLS enables TLS for a target without scheme (an "https://" target
	// implies it, "http://" means plaintext h2c).
	TLS bool
	// CAFile is a PEM CA bundle to verify the agent (default: system roots).
	CAFile string
	// CertFile and KeyFile are the client certificate for mTLS.
	CertFile string
	// KeyFile is the client key for mTLS.
	KeyFile string
	// ServerName overrides the TLS server name.
	ServerName string
	// InsecureSkipVerify disables certificate verification (tls-insecure).
	InsecureSkipVerify bool
}

// DialGRPC connects to a gRPC v2 agent at target ("http://host:port" =
// h2c, "https://host:port" = TLS, "host:port" = TLS iff opts.TLS), opens
// one ProcessStream, runs the handshake (config in config_json) and returns
// the running client.
func DialGRPC(ctx context.Context, target string, opts GRPCOptions) (Client, error) {
	return nil, errors.New("not implemented")
}
