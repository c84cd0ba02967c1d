package controlapi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/registry"
)

func TestConfigValidate(t *testing.T) {
	tok := []Token{{Token: adminToken}}
	tlsFull := &TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", AllowedIdentities: []string{"ops"}}
	tests := []struct {
		name string
		cfg  Config
		err  string // "" = valid
	}{
		{"token", Config{Tokens: tok}, ""},
		{"no auth", Config{}, errNoAuth},
		{"tls without client auth", Config{TLS: &TLSConfig{CertFile: "c", KeyFile: "k"}}, errNoAuth},
		{"client CA without identities", Config{TLS: &TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}}, errNoAuth},
		{"mTLS only", Config{TLS: tlsFull}, ""},
		{"mTLS on all interfaces", Config{Listen: ":9901", TLS: tlsFull}, ""},
		{"non-loopback without TLS", Config{Listen: "0.0.0.0:9901", Tokens: tok}, "is not a loopback address"},
		{"all interfaces without TLS", Config{Listen: ":9901", Tokens: tok}, "is not a loopback address"},
		{"public IP without TLS", Config{Listen: "192.0.2.7:9901", Tokens: tok}, "is not a loopback address"},
		{"fd without TLS", Config{Listen: "fd/3", Tokens: tok}, "is not a loopback address"},
		{"localhost", Config{Listen: "localhost:9901", Tokens: tok}, ""},
		{"IPv6 loopback", Config{Listen: "[::1]:9901", Tokens: tok}, ""},
		{"unix socket", Config{Listen: "unix//run/sentinel/api.sock", Tokens: tok}, ""},
		{"port range", Config{Listen: "127.0.0.1:9901-9902", Tokens: tok}, "give one port"},
		{"no port", Config{Listen: "127.0.0.1", Tokens: tok}, "give one port"},
		{"udp", Config{Listen: "udp/127.0.0.1:9901", Tokens: tok}, "not supported"},
		{"bad listen", Config{Listen: "127.0.0.1:99999", Tokens: tok}, "listen"},
		{"empty token", Config{Tokens: []Token{{Name: "x"}}}, "tokens[0]: the token is empty"},
		{"space in token", Config{Tokens: []Token{{Token: "ab cd"}}}, "white space"},
		{"duplicate token", Config{Tokens: []Token{{Name: "a", Token: "same"}, {Name: "b", Token: "same"}}}, "tokens[1] repeats the token of tokens[0]"},
		{"duplicate name", Config{Tokens: []Token{{Name: "a", Token: "x1"}, {Name: "a", Token: "x2"}}}, `name "a" is already`},
		{"default name clash", Config{Tokens: []Token{{Token: "x1"}, {Name: "token-1", Token: "x2"}}}, "already"},
		{"control in name", Config{Tokens: []Token{{Name: "a\nb", Token: "x1"}}}, "control characters"},
		{"bad scope", Config{Tokens: []Token{{Token: "x", Scopes: []string{"write"}}}}, `unknown scope "write"`},
		{"empty scopes", Config{Tokens: []Token{{Token: "x", Scopes: []string{}}}}, "scopes is empty"},
		{"negative max body", Config{Tokens: tok, MaxBodyBytes: -1}, "max_body_bytes"},
		{"tls without key", Config{Tokens: tok, TLS: &TLSConfig{CertFile: "c"}}, "both cert_file and key_file"},
		{"identities without CA", Config{Tokens: tok, TLS: &TLSConfig{CertFile: "c", KeyFile: "k", AllowedIdentities: []string{"x"}}}, "needs tls.client_ca_file"},
		{"empty identity", Config{Tokens: tok, TLS: &TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", AllowedIdentities: []string{" "}}}, "not a certificate identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "same") || strings.Contains(err.Error(), adminToken) {
				t.Errorf("the error reveals a token: %v", err)
			}
			if _, err := New(tt.cfg, registry.New(), nil, Hooks{}); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	var c Config
	err := json.Unmarshal([]byte(`{"listen":"127.0.0.1:9000","tokens":[{"name":"ci","token":"t0k","scopes":["read"]}],"tls":{"cert_file":"c","key_file":"k","client_ca_file":"ca","allowed_identities":["ops"]},"max_body_bytes":2048}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.Tokens[0].Scopes[0] != "read" || c.TLS.AllowedIdentities[0] != "ops" || c.MaxBodyBytes != 2048 || c.maxBody() != 2048 {
		t.Errorf("%+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	var d Config
	if d.ListenAddress() != DefaultListen || d.maxBody() != DefaultMaxBodyBytes {
		t.Errorf("defaults %q %d", d.ListenAddress(), d.maxBody())
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{Tokens: []Token{{Token: "x"}}}, nil, nil, Hooks{}); err == nil {
		t.Error("no registry accepted")
	}
	if _, err := New(Config{}, registry.New(), nil, Hooks{}); err == nil || err.Error() != errNoAuth {
		t.Errorf("error %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	if cfg, err := (&Config{}).TLSConfig(); cfg != nil || err != nil {
		t.Errorf("no TLS: %v %v", cfg, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  TLSConfig
		err  string
	}{
		{"half", TLSConfig{CertFile: pki.serverCert}, "both cert_file and key_file"},
		{"missing cert", TLSConfig{CertFile: filepath.Join(dir, "nope"), KeyFile: pki.serverKey}, "loading the certificate"},
		{"missing CA", TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: filepath.Join(dir, "nope")}, "reading client_ca_file"},
		{"CA not PEM", TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: notPEM}, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		c := Config{TLS: &tt.tls}
		if _, err := c.TLSConfig(); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
		}
	}
	c := Config{TLS: &TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey}}
	cfg, err := c.TLSConfig()
	if err != nil || len(cfg.Certificates) != 1 || cfg.ClientCAs != nil {
		t.Errorf("server-only TLS: %v %v", cfg, err)
	}
}
