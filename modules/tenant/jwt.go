package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWT reads the namespace from a claim of a signed token, verified
// against a JSON Web Key Set. Only asymmetric signatures are accepted
// (RS*, PS*, ES*, EdDSA): "none" and HMAC tokens are refused, as are
// tokens without an expiry, expired ones, and ones for another audience.
type JWT struct {
	// Claim is the claim holding the namespace. Default "tenant".
	Claim string `json:"claim,omitempty"`

	// Header is the request header carrying the token as
	// "Bearer <token>". Default "Authorization".
	Header string `json:"header,omitempty"`

	// JWKSFile is a file holding the key set. Give it or JWKSURL.
	JWKSFile string `json:"jwks_file,omitempty"`

	// JWKSURL is an http(s) URL serving the key set; it is fetched at
	// provisioning and again after CacheTTL, or (at most once per
	// MinRefresh) when a token names a key id the set does not have.
	JWKSURL string `json:"jwks_url,omitempty"`

	// CacheTTL is how long a fetched key set is used. Default 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// Audience: a token must name one of these in "aud". Required.
	Audience []string `json:"audience"`

	// Issuer, when set, must be the token's "iss".
	Issuer string `json:"issuer,omitempty"`

	// Leeway is the clock skew allowed on exp and nbf. Default 30s.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	keys   *keyCache
	client *http.Client
}

// Defaults of JWT.
const (
	DefaultJWTClaim   = "tenant"
	DefaultCacheTTL   = 5 * time.Minute
	DefaultLeeway     = 30 * time.Second
	MinRefresh        = 30 * time.Second
	maxJWKSBytes      = 1 << 20
	jwksFetchTimeout  = 10 * time.Second
	maxTokenHeaderLen = 16 << 10
)

// algorithms are the accepted signature algorithms: asymmetric only.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

func (j *JWT) validate() error {
	if (j.JWKSFile == "") == (j.JWKSURL == "") {
		return errors.New("give exactly one of jwks_file and jwks_url")
	}
	if len(j.Audience) == 0 {
		return errors.New("audience is required")
	}
	if j.JWKSURL != "" && !strings.HasPrefix(j.JWKSURL, "https://") && !strings.HasPrefix(j.JWKSURL, "http://") {
		return fmt.Errorf("jwks_url %q must be an http(s) URL", j.JWKSURL)
	}
	return nil
}

func (j *JWT) provision(ctx caddy.Context) error {
	if j.Claim == "" {
		j.Claim = DefaultJWTClaim
	}
	if j.Header == "" {
		j.Header = "Authorization"
	}
	if j.CacheTTL <= 0 {
		j.CacheTTL = caddy.Duration(DefaultCacheTTL)
	}
	if j.Leeway <= 0 {
		j.Leeway = caddy.Duration(DefaultLeeway)
	}
	j.client = &http.Client{Timeout: jwksFetchTimeout}
	j.keys = &keyCache{}
	if err := j.validate(); err != nil {
		return err
	}
	set, err := j.load(ctx)
	if err != nil {
		return err
	}
	j.keys.set, j.keys.fetched = set, time.Now()
	return nil
}

// load reads the key set from the file or the URL.
func (j *JWT) load(ctx context.Context) (*jose.JSONWebKeySet, error) {
	var raw []byte
	if j.JWKSFile != "" {
		b, err := os.ReadFile(j.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwks_file: %w", err)
		}
		raw = b
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.JWKSURL, nil)
		if err != nil {
			return nil, fmt.Errorf("jwks_url: %w", err)
		}
		resp, err := j.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("jwks_url: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("jwks_url: status %d", resp.StatusCode)
		}
		raw, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
		if err != nil {
			return nil, fmt.Errorf("jwks_url: %w", err)
		}
		if len(raw) > maxJWKSBytes {
			return nil, fmt.Errorf("jwks_url: key set larger than %d bytes", maxJWKSBytes)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("key set is not a JWKS: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("key set: key %q is not a public key", k.KeyID)
		}
	}
	return &set, nil
}

// keyCache holds the key set and when it was fetched.
type keyCache struct {
	mu      sync.Mutex
	set     *jose.JSONWebKeySet
	fetched time.Time
	tried   time.Time
}

// key returns the keys for kid, refreshing a URL's set when it is stale
// or lacks kid. One request refreshes at a time, at most once per
// MinRefresh, without holding the lock: the others go on with the set
// they have.
func (j *JWT) key(ctx context.Context, kid string) []jose.JSONWebKey {
	c := j.keys
	c.mu.Lock()
	keys := keysFor(c.set, kid)
	now := time.Now()
	stale := now.Sub(c.fetched) > time.Duration(j.CacheTTL)
	refresh := j.JWKSURL != "" && (stale || len(keys) == 0) && now.Sub(c.tried) > MinRefresh
	if refresh {
		c.tried = now
	}
	c.mu.Unlock()
	if !refresh {
		return keys
	}
	// The fetch is the cache's, not the request's: a client that goes
	// away must not abort it (the next attempt waits MinRefresh, so a
	// client cancelling its requests would keep rotated keys out for
	// good). It is bounded by the client's own timeout.
	set, err := j.load(context.WithoutCancel(ctx))
	if err != nil {
		return keys
	}
	c.mu.Lock()
	c.set, c.fetched = set, time.Now()
	c.mu.Unlock()
	return keysFor(set, kid)
}

// keysFor returns the keys of set for kid (all of them for no kid).
func keysFor(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

// namespace returns the claim of the request's verified token; "" and
// no error when the request has no token.
func (j *JWT) namespace(r *http.Request) (string, error) {
	v := r.Header.Values(j.Header)
	if len(v) == 0 {
		return "", nil
	}
	if len(v) > 1 {
		return "", errors.New("more than one " + j.Header + " header")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(v[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", nil // not a bearer token: not ours
	}
	tok = strings.TrimSpace(tok)
	if len(tok) > maxTokenHeaderLen {
		return "", errors.New("token too large")
	}
	parsed, err := jwt.ParseSigned(tok, algorithms)
	if err != nil {
		return "", errors.New("not a JWT signed with an accepted algorithm")
	}
	if len(parsed.Headers) != 1 {
		return "", errors.New("one signature expected")
	}
	var std jwt.Claims
	custom := map[string]any{}
	verified := false
	for _, k := range j.key(r.Context(), parsed.Headers[0].KeyID) {
		if k.Algorithm != "" && k.Algorithm != parsed.Headers[0].Algorithm {
			continue
		}
		if err := parsed.Claims(k.Key, &std, &custom); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return "", errors.New("signature not verified by any key of the key set")
	}
	if std.Expiry == nil {
		return "", errors.New("no exp claim")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{AnyAudience: j.Audience, Issuer: j.Issuer, Time: time.Now()}, time.Duration(j.Leeway)); err != nil {
		return "", err
	}
	ns, ok := custom[j.Claim].(string)
	if !ok || ns == "" {
		return "", errors.New("no " + j.Claim + " claim")
	}
	return ns, nil
}
