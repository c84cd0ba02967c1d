package controlapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/sentinel-proxy/sentinel/registry"
)

// scope is a level of access; each includes the ones below it.
type scope int

// The scope levels.
const (
	scopeNone scope = iota
	scopeRead
	scopeOperate
	scopeAdmin
)

// String returns the scope's name.
func (s scope) String() string {
	switch s {
	case scopeRead:
		return ScopeRead
	case scopeOperate:
		return ScopeOperate
	case scopeAdmin:
		return ScopeAdmin
	}
	return "none"
}

// parseScope parses a scope name.
func parseScope(name string) (scope, bool) {
	switch name {
	case ScopeRead:
		return scopeRead, true
	case ScopeOperate:
		return scopeOperate, true
	case ScopeAdmin:
		return scopeAdmin, true
	}
	return scopeNone, false
}

// tokenEntry is a configured token, kept only as a hash.
type tokenEntry struct {
	name  string
	hash  [sha256.Size]byte
	scope scope
	// namespace limits the token to one namespace ("": all).
	namespace string
}

// newTokenEntries hashes the configured tokens. The config is valid.
func newTokenEntries(tokens []Token) []tokenEntry {
	out := make([]tokenEntry, 0, len(tokens))
	for i, t := range tokens {
		e := tokenEntry{name: tokenName(t, i), hash: sha256.Sum256([]byte(t.Token)), scope: scopeAdmin, namespace: t.Namespace}
		if t.TokenSHA256 != "" {
			b, _ := hex.DecodeString(t.TokenSHA256)
			copy(e.hash[:], b)
		}
		if len(t.Scopes) > 0 {
			e.scope = scopeNone
			for _, name := range t.Scopes {
				if sc, _ := parseScope(name); sc > e.scope {
					e.scope = sc
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// principal is who makes a call.
type principal struct {
	// name is the token name, or the certificate identity.
	name string
	// method is "token" or "client_certificate".
	method string
	// identity is the verified client certificate's identity, if any.
	identity string
	scope    scope
	// namespace limits the caller to one namespace ("": all).
	namespace string
}

// authError is why a call is not authenticated.
type authError string

// authenticate identifies the caller. A bearer token, when sent, decides
// (a wrong one is refused even with a good client certificate); without
// one, a verified client certificate whose identity is allowed gets the
// admin scope.
func (s *Server) authenticate(r *http.Request) (*principal, authError) {
	identity := s.certIdentity(r)
	header := r.Header.Values("Authorization")
	if len(header) == 0 {
		if identity != "" {
			return &principal{name: identity, method: "client_certificate", identity: identity, scope: scopeAdmin}, ""
		}
		return nil, "authentication required: send Authorization: Bearer <token>"
	}
	if len(header) > 1 {
		return nil, "more than one Authorization header"
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, "the Authorization header must be: Bearer <token>"
	}
	e := s.matchToken(strings.TrimSpace(token))
	if e == nil {
		return nil, "invalid token"
	}
	return &principal{name: e.name, method: "token", identity: identity, scope: e.scope, namespace: e.namespace}, ""
}

// matchToken returns the configured token equal to token, or nil. It
// compares SHA-256 hashes in constant time and always looks at every
// configured token, so neither the length of the tokens nor which one
// matched shows in the timing.
func (s *Server) matchToken(token string) *tokenEntry {
	h := sha256.Sum256([]byte(token))
	var found *tokenEntry
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], s.tokens[i].hash[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	return found
}

// certIdentity returns the allowed identity of the verified client
// certificate of r, or "".
func (s *Server) certIdentity(r *http.Request) string {
	if len(s.identities) == 0 || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := r.TLS.VerifiedChains[0][0]
	candidates := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, ok := s.identities[strings.ToLower(c)]; ok {
			return c
		}
	}
	return ""
}

// validNamespace reports whether ns may name a namespace.
func validNamespace(ns string) bool {
	for _, r := range ns {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return ns != ""
}

// sees reports whether the caller may see or change the upstream or
// route id.
func (p *principal) sees(id string) bool {
	return registry.InNamespace(id, p.namespace)
}
