package controlapi

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// DefaultListen is the address the API listens on when Config.Listen is
// empty: loopback only.
const DefaultListen = "127.0.0.1:9901"

// DefaultMaxBodyBytes is the largest request body accepted when
// Config.MaxBodyBytes is 0 (1 MiB).
const DefaultMaxBodyBytes int64 = 1 << 20

// The scopes a token may carry. Each includes the ones below it:
// admin ⊃ operate ⊃ read.
const (
	// ScopeRead allows every GET except config validation.
	ScopeRead = "read"
	// ScopeOperate adds draining, target weight/state changes and route
	// switches.
	ScopeOperate = "operate"
	// ScopeAdmin adds creating and deleting upstreams, replacing, adding
	// and removing targets, and config reload and validation.
	ScopeAdmin = "admin"
)

// errNoAuth is the refusal of a configuration without any authentication.
const errNoAuth = "the control-plane API refuses unauthenticated calls: give a token or client-certificate auth"

// Config is the JSON configuration of the control-plane API. Every call
// must be authenticated, by a bearer token or by a client certificate.
type Config struct {
	// Listen is the network address of the API's listener, in Caddy's
	// network address syntax ("host:port", "unix//path/to/socket").
	// Default: "127.0.0.1:9901". An address that is neither loopback nor a
	// unix socket needs tls, so that tokens never cross the network in
	// clear text.
	Listen string `json:"listen,omitempty"`

	// Tokens are the bearer tokens accepted in `Authorization: Bearer
	// <token>`, each with a name (shown in the audit log in its place)
	// and scopes.
	Tokens []Token `json:"tokens,omitempty"`

	// TLS serves the API over HTTPS and, with client_ca_file, requires
	// client certificates.
	TLS *TLSConfig `json:"tls,omitempty"`

	// MaxBodyBytes is the largest request body accepted; larger ones are
	// answered 413. Default: 1 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`

	// AllowedTargetNetworks, when set, are the networks (CIDR prefixes
	// or single IP addresses) that targets added or changed through the
	// API must be in; they may include loopback or link-local ranges.
	// Without it, API targets may be any address but loopback,
	// link-local, unspecified and multicast ones. Either way the proxy's
	// own listening addresses are refused, and host names are resolved
	// and each of their addresses checked. Targets declared in the
	// configuration are not checked.
	AllowedTargetNetworks []string `json:"allowed_target_networks,omitempty"`

	// ConfigEditor enables PUT /api/v1/config/source: an admin token may
	// then replace the config file's text (validated first, written
	// atomically, reloaded, and restored when the reload fails). Off by
	// default: with it, an admin token can write the file on disk, and
	// what the proxy runs after a restart.
	ConfigEditor bool `json:"config_editor,omitempty"`
}

// Token is a bearer token of the API.
type Token struct {
	// Name identifies the token in the audit log (the token itself is
	// never logged). Default: "token-<n>", n counting from 1. Names must
	// be distinct.
	Name string `json:"name,omitempty"`

	// Token is the secret sent as `Authorization: Bearer <token>`. It may
	// not be empty, contain white space or control characters, or repeat
	// another token. Give either Token or TokenSHA256; the KDL adapter
	// writes TokenSHA256 so that the secret never appears in the JSON
	// config (which Caddy's admin endpoint would show).
	Token string `json:"token,omitempty"`

	// TokenSHA256 is the lowercase hex SHA-256 of the token, instead of
	// Token.
	TokenSHA256 string `json:"token_sha256,omitempty"`

	// Scopes are what the token may do: "read", "operate" and/or "admin"
	// (admin includes operate, which includes read). Default: ["admin"].
	Scopes []string `json:"scopes,omitempty"`

	// Namespace, when set, limits the token to one configuration
	// namespace: it sees and changes only the upstreams and routes whose
	// ids are qualified with it ("team-a:api"); other ids are answered
	// 403, the lists show nothing else, and the endpoints that are not
	// about upstreams or routes (agents, config, state) are refused.
	Namespace string `json:"namespace,omitempty"`
}

// TLSConfig is the TLS configuration of the API's listener.
type TLSConfig struct {
	// CertFile is the PEM file of the server certificate (chain).
	CertFile string `json:"cert_file,omitempty"`

	// KeyFile is the PEM file of the server certificate's private key.
	KeyFile string `json:"key_file,omitempty"`

	// ClientCAFile, when set, is the PEM file of the CA certificates that
	// sign client certificates: every connection must then present a
	// client certificate that verifies against them.
	ClientCAFile string `json:"client_ca_file,omitempty"`

	// AllowedIdentities are the client certificate identities (subject
	// common name or DNS subject alternative name, compared exactly,
	// ignoring case) that authenticate a call on their own, with the
	// admin scope, when no bearer token is sent. With a bearer token, the
	// token's scopes apply. Requires client_ca_file. When empty, client
	// certificates only guard the connection and every call needs a token.
	AllowedIdentities []string `json:"allowed_identities,omitempty"`
}

// ListenAddress returns Listen, or DefaultListen when it is empty.
func (c *Config) ListenAddress() string {
	if c.Listen == "" {
		return DefaultListen
	}
	return c.Listen
}

// maxBody returns MaxBodyBytes or its default.
func (c *Config) maxBody() int64 {
	if c.MaxBodyBytes <= 0 {
		return DefaultMaxBodyBytes
	}
	return c.MaxBodyBytes
}

// certAuth reports whether client certificates authenticate calls on
// their own.
func (c *Config) certAuth() bool {
	return c.TLS != nil && c.TLS.ClientCAFile != "" && len(c.TLS.AllowedIdentities) > 0
}

// Validate checks the configuration without reading any file. It
// reports every problem found.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Tokens) == 0 && !c.certAuth() {
		errs = append(errs, errors.New(errNoAuth))
	}
	if err := c.validateListen(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBodyBytes < 0 {
		add("max_body_bytes %d is negative", c.MaxBodyBytes)
	}

	for i, n := range c.AllowedTargetNetworks {
		if _, err := parseNetwork(n); err != nil {
			add("allowed_target_networks[%d] %q is not a CIDR prefix or an IP address", i, n)
		}
	}

	names := map[string]int{}
	secrets := map[[sha256.Size]byte]int{}
	for i, t := range c.Tokens {
		hash, ok := [sha256.Size]byte{}, true
		switch {
		case t.Token != "" && t.TokenSHA256 != "":
			add("tokens[%d]: give token or token_sha256, not both", i)
			ok = false
		case t.TokenSHA256 != "":
			b, err := hex.DecodeString(t.TokenSHA256)
			if err != nil || len(b) != sha256.Size || strings.ToLower(t.TokenSHA256) != t.TokenSHA256 {
				add("tokens[%d]: token_sha256 must be 64 lowercase hex digits", i)
				ok = false
			}
			copy(hash[:], b)
		case t.Token == "":
			add("tokens[%d]: the token is empty", i)
			ok = false
		case !validSecret(t.Token):
			add("tokens[%d]: the token contains white space or control characters", i)
			ok = false
		default:
			hash = sha256.Sum256([]byte(t.Token))
		}
		if ok {
			if j, dup := secrets[hash]; dup {
				add("tokens[%d] repeats the token of tokens[%d]", i, j)
			} else {
				secrets[hash] = i
			}
		}
		name := tokenName(t, i)
		if !validName(name) {
			add("tokens[%d]: name %q may not contain control characters", i, name)
		}
		if j, dup := names[name]; dup {
			add("tokens[%d]: name %q is already the name of tokens[%d]", i, name, j)
		} else {
			names[name] = i
		}
		if len(t.Scopes) == 0 && t.Scopes != nil {
			add("tokens[%d]: scopes is empty: give read, operate or admin, or leave it out for admin", i)
		}
		for _, s := range t.Scopes {
			if _, ok := parseScope(s); !ok {
				add("tokens[%d]: unknown scope %q: use read, operate or admin", i, s)
			}
		}
		if t.Namespace != "" && !validNamespace(t.Namespace) {
			add("tokens[%d]: namespace %q: use letters, digits, '-', '_' and '.' only", i, t.Namespace)
		}
	}

	if t := c.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			add("tls needs both cert_file and key_file")
		}
		if len(t.AllowedIdentities) > 0 && t.ClientCAFile == "" {
			add("tls.allowed_identities needs tls.client_ca_file to verify client certificates")
		}
		for i, id := range t.AllowedIdentities {
			if strings.TrimSpace(id) == "" || !validName(id) {
				add("tls.allowed_identities[%d] %q is not a certificate identity", i, id)
			}
		}
	}
	return errors.Join(errs...)
}

// validateListen checks Listen: one address, and TLS unless it is local.
func (c *Config) validateListen() error {
	addr := c.ListenAddress()
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %v", addr, err)
	}
	if na.IsUnixNetwork() {
		return nil
	}
	local := false
	switch na.Network {
	case "tcp", "tcp4", "tcp6":
		if na.PortRangeSize() != 1 || na.StartPort == 0 {
			return fmt.Errorf("listen %q: give one port", addr)
		}
		local = isLoopbackHost(na.Host)
	case "fd":
	default:
		return fmt.Errorf("listen %q: network %q is not supported: use a TCP address or a unix socket", addr, na.Network)
	}
	if !local && c.TLS == nil {
		return fmt.Errorf("listen %q is not a loopback address: configure tls so that credentials do not cross the network in clear text (and authentication, which is always required)", addr)
	}
	return nil
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// validSecret reports whether a token can be sent in a header as is.
func validSecret(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// validName reports whether s has no control characters.
func validName(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// tokenName returns the name of the i-th token.
func tokenName(t Token, i int) string {
	if t.Name != "" {
		return t.Name
	}
	return fmt.Sprintf("token-%d", i+1)
}

// TLSConfig returns the TLS configuration of the API's listener, or nil
// when TLS is not configured. It reads the certificate, key and client CA
// files. With client_ca_file, clients must present a certificate that
// verifies against it (tls.RequireAndVerifyClientCert).
func (c *Config) TLSConfig() (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	t := c.TLS
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("tls needs both cert_file and key_file")
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading the certificate: %v", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: reading client_ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client_ca_file %s holds no PEM certificate", t.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
