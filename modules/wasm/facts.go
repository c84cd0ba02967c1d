package wasm

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// clientIP is the client's IP as Caddy's server determined it (the
// client_ip variable: the peer, or a trusted proxy's forwarded address),
// else the peer's.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tlsVersions names the TLS versions as get_tls reports them.
var tlsVersions = map[uint16]string{
	tls.VersionTLS10: "1.0",
	tls.VersionTLS11: "1.1",
	tls.VersionTLS12: "1.2",
	tls.VersionTLS13: "1.3",
}

// tlsFact returns a field of get_tls, and false when it is absent (no
// TLS, or no client certificate).
func tlsFact(cs *tls.ConnectionState, field uint32) (string, bool) {
	if cs == nil {
		return "", false
	}
	switch field {
	case tlsVersion:
		if v, ok := tlsVersions[cs.Version]; ok {
			return v, true
		}
		return tls.VersionName(cs.Version), true
	case tlsCipherSuite:
		return tls.CipherSuiteName(cs.CipherSuite), true
	case tlsServerName:
		return cs.ServerName, true
	case tlsALPN:
		return cs.NegotiatedProtocol, true
	case tlsClientSubject, tlsClientSHA256:
		if len(cs.PeerCertificates) == 0 {
			return "", false
		}
		c := cs.PeerCertificates[0]
		if field == tlsClientSubject {
			return c.Subject.String(), true
		}
		sum := sha256.Sum256(c.Raw)
		return hex.EncodeToString(sum[:]), true
	}
	return "", false
}
