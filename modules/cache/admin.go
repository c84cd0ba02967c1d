package cache

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The actions of the admin handler.
const (
	// ActionPurge removes entries: the request's path (and query) names
	// them, exactly, or as a pattern where `*` matches any characters
	// when the request has `X-Purge-Wildcard: true`. Methods PURGE,
	// POST and DELETE; the answer is `{"purged":N,"pattern":…,"wildcard":…}`.
	ActionPurge = "purge"
	// ActionStats answers the storage's counters and occupancy (Stats)
	// to GET and HEAD.
	ActionStats = "stats"
)

// Admin is a terminal handler that purges a cache storage or reports its
// statistics (the original's `cache-purge` and `cache-stats` builtins).
//
// Purging is an operation on the proxy, so it needs one of Tokens, sent
// as `Authorization: Bearer <token>` (the KDL adapter gives it the
// admin-api's tokens of scope operate or admin); without a valid token it
// answers 401, to other methods 405. Stats need a token only when Tokens
// are given.
type Admin struct {
	// Action is "purge" or "stats". Required.
	Action string `json:"action"`

	// Storage is the storage acted on: equal to the Storage of the
	// sentinel_cache handlers whose entries it purges or reports.
	Storage Storage `json:"storage,omitempty"`

	// Tokens are the bearer tokens accepted. Required for purge.
	Tokens []Token `json:"tokens,omitempty"`

	// Route is the Sentinel route (logs only).
	Route string `json:"route,omitempty"`

	shared *shared
	hashes [][sha256.Size]byte
	logger *zap.Logger
}

// Token is an accepted bearer token, given by its SHA-256 (as the
// control-plane API's tokens are) or in clear.
type Token struct {
	// Name identifies the token in logs (the token is never logged).
	Name string `json:"name,omitempty"`
	// Token is the secret; prefer TokenSHA256, which keeps it out of the
	// JSON config.
	Token string `json:"token,omitempty"`
	// TokenSHA256 is the lowercase hex SHA-256 of the token.
	TokenSHA256 string `json:"token_sha256,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_cache_admin",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Provision joins the storage and hashes the tokens.
func (a *Admin) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger().With(zap.String("action", a.Action), zap.String("route", a.Route))
	for i, t := range a.Tokens {
		var h [sha256.Size]byte
		switch {
		case t.TokenSHA256 != "":
			b, err := hex.DecodeString(t.TokenSHA256)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("tokens[%d]: token_sha256 is not a hex SHA-256", i)
			}
			copy(h[:], b)
		case t.Token != "":
			h = sha256.Sum256([]byte(t.Token))
		default:
			return fmt.Errorf("tokens[%d]: give token or token_sha256", i)
		}
		a.hashes = append(a.hashes, h)
	}
	a.Storage = a.Storage.withDefaults()
	if err := a.Storage.validate(); err != nil {
		return err
	}
	s, err := acquire(a.Storage, ctx.Logger())
	if err != nil {
		return err
	}
	a.shared = s
	return nil
}

// Validate checks the action, and that purging is protected.
func (a *Admin) Validate() error {
	switch a.Action {
	case ActionPurge:
		if len(a.Tokens) == 0 {
			return fmt.Errorf("action purge needs tokens: purging must be authenticated")
		}
	case ActionStats:
	case "":
		return fmt.Errorf("action is required (purge, stats)")
	default:
		return fmt.Errorf("unknown action %q (purge, stats)", a.Action)
	}
	return nil
}

// Cleanup releases the storage.
func (a *Admin) Cleanup() error {
	if a.shared != nil {
		_, err := stores.Delete(a.Storage.poolKey())
		return err
	}
	return nil
}

// ServeHTTP purges or reports; it never calls next.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	allowed := []string{http.MethodGet, http.MethodHead}
	if a.Action == ActionPurge {
		allowed = []string{"PURGE", http.MethodPost, http.MethodDelete}
	}
	if !slices.Contains(allowed, r.Method) {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return a.reply(w, r, http.StatusMethodNotAllowed, map[string]any{"error": "method not allowed", "status": http.StatusMethodNotAllowed})
	}
	if len(a.hashes) > 0 {
		if msg := a.authenticate(r); msg != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sentinel"`)
			return a.reply(w, r, http.StatusUnauthorized, map[string]any{"error": msg, "status": http.StatusUnauthorized})
		}
	}
	if a.Action == ActionStats {
		return a.reply(w, r, http.StatusOK, a.shared.snapshot(a.Storage.Backend))
	}
	pattern := r.URL.Path
	if r.URL.RawQuery != "" {
		pattern += "?" + r.URL.RawQuery
	}
	wildcard := strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Purge-Wildcard")), "true")
	n, err := a.shared.store.Purge(purgeMatcher(pattern, wildcard))
	a.shared.stats.purged.Add(int64(n))
	if err != nil {
		// A shared store could not be reached: the purge did not reach
		// every replica; the caller retries.
		a.logger.Warn("cache purge incomplete", zap.String("pattern", pattern), zap.Bool("wildcard", wildcard), zap.Int("entries", n), zap.Error(err))
		w.Header().Set("Retry-After", "1")
		return a.reply(w, r, http.StatusServiceUnavailable, map[string]any{"error": "purge incomplete: " + err.Error(), "status": http.StatusServiceUnavailable, "purged": n, "pattern": pattern, "wildcard": wildcard})
	}
	a.logger.Info("cache purged", zap.String("pattern", pattern), zap.Bool("wildcard", wildcard), zap.Int("entries", n))
	return a.reply(w, r, http.StatusOK, map[string]any{"purged": n, "pattern": pattern, "wildcard": wildcard})
}

// authenticate checks the bearer token in constant time over all
// tokens; it returns why the request is refused, or "".
func (a *Admin) authenticate(r *http.Request) string {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "authentication required: send Authorization: Bearer <token>"
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "the Authorization header must be: Bearer <token>"
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	found := 0
	for i := range a.hashes {
		found |= subtle.ConstantTimeCompare(sum[:], a.hashes[i][:])
	}
	if found != 1 {
		return "invalid token"
	}
	return ""
}

// reply writes a JSON response.
func (a *Admin) reply(w http.ResponseWriter, r *http.Request, status int, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Admin)(nil)
	_ caddy.Validator             = (*Admin)(nil)
	_ caddy.CleanerUpper          = (*Admin)(nil)
	_ caddyhttp.MiddlewareHandler = (*Admin)(nil)
)
