// Package geo provides the `sentinel_geo` handler: the original
// Sentinel's `geo` filter. It looks the client's address up in a MaxMind
// database (.mmdb: GeoIP2 or GeoLite2 Country or City, or any database
// with the same `country.iso_code` layout), blocks or allows the request
// by country, and tells the upstream the country in `X-GeoIP-Country`.
package geo

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("sentinel_geo", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_geo", httpcaddyfile.Before, "header")
}

// CountryHeader is the request header that carries the client's country
// to the upstream.
const CountryHeader = "X-GeoIP-Country"

// CountryVar is the request variable holding the client's country
// (placeholder `{http.vars.geoip_country}`), set when the lookup found
// one.
const CountryVar = "geoip_country"

// DefaultStatusCode is the status of blocked requests.
const DefaultStatusCode = http.StatusForbidden

// The actions.
const (
	ActionBlock   = "block"
	ActionAllow   = "allow"
	ActionLogOnly = "log_only"
)

// The failure modes.
const (
	FailOpen   = "open"
	FailClosed = "closed"
)

// Handler filters requests by the country of the client's address.
//
// The client's address is the one Caddy determined: the connection's
// peer, or, from a peer in the server's `trusted_proxies`, the address
// in its `client_ip_headers` (X-Forwarded-For by default); a header sent
// by an untrusted client is never read.
//
// A client's own `X-GeoIP-Country` is always removed; the handler sets
// its own when the lookup finds a country (and `country_header` is not
// false).
type Handler struct {
	// Path of the MaxMind database (.mmdb), read when the config is
	// loaded: a file that cannot be opened fails the load. Handlers
	// reading the same file share one copy in memory, which is reloaded
	// when the file changes (checked every `reload_interval`). Global
	// placeholders (`{env.GEOIP_DB}`) are replaced. Required.
	Database string `json:"database,omitempty"`

	// What to do with the countries listed: `block` (default: those are
	// answered with `status_code`), `allow` (only those pass: every other
	// country is answered with `status_code`) or `log_only` (requests
	// from those are logged, and all pass). Hyphens may stand for
	// underscores (`log-only`).
	Action string `json:"action,omitempty"`

	// ISO 3166-1 alpha-2 country codes (`US`, `DE`, …; case does not
	// matter). Required with actions `block` and `allow`.
	Countries []string `json:"countries,omitempty"`

	// What to do when the lookup finds no country (the address is not in
	// the database, the database fails, no client address): `open`
	// (default) lets the request through; `closed` answers it with
	// `status_code`.
	OnFailure string `json:"on_failure,omitempty"`

	// The status of blocked requests (4xx or 5xx). Default: 403.
	StatusCode int `json:"status_code,omitempty"`

	// The body of blocked requests. Default: the status text.
	Message string `json:"message,omitempty"`

	// Whether to set `X-GeoIP-Country` on the request to the upstream.
	// Default: true.
	CountryHeader *bool `json:"country_header,omitempty"`

	// Names the filter in logs and in the `filter` label of the
	// metrics (the filter's id in a KDL config).
	Name string `json:"name,omitempty"`

	// How often the database file is checked for changes. Default: 1m;
	// a negative value never reloads. Handlers sharing a file use the
	// interval of the first one that opened it.
	ReloadInterval caddy.Duration `json:"reload_interval,omitempty"`

	action     string
	failClosed bool
	setHeader  bool
	countries  map[string]bool
	message    []byte
	db         *database
	metrics    *metrics
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_geo",
		New: func() caddy.Module { return new(Handler) },
	}
}

// normalize applies the defaults and checks the settings (Validate and
// Provision share it).
func (h *Handler) normalize() error {
	if strings.TrimSpace(h.Database) == "" {
		return errors.New("database: the path of a MaxMind .mmdb file is required")
	}
	switch h.action = strings.ReplaceAll(strings.ToLower(h.Action), "-", "_"); h.action {
	case "":
		h.action = ActionBlock
	case ActionBlock, ActionAllow, ActionLogOnly:
	default:
		return fmt.Errorf("action %q: expected block, allow or log_only", h.Action)
	}
	h.countries = make(map[string]bool, len(h.Countries))
	for _, c := range h.Countries {
		code, ok := NormalizeCountry(c)
		if !ok {
			return fmt.Errorf("countries: %q is not an ISO 3166-1 alpha-2 country code", c)
		}
		h.countries[code] = true
	}
	if len(h.countries) == 0 && h.action != ActionLogOnly {
		return fmt.Errorf("countries: action %s needs at least one country code", h.action)
	}
	switch strings.ToLower(h.OnFailure) {
	case "", FailOpen:
		h.failClosed = false
	case FailClosed:
		h.failClosed = true
	default:
		return fmt.Errorf("on_failure %q: expected open or closed", h.OnFailure)
	}
	if h.StatusCode == 0 {
		h.StatusCode = DefaultStatusCode
	}
	if h.StatusCode < 400 || h.StatusCode > 599 {
		return fmt.Errorf("status_code %d: must be 4xx or 5xx", h.StatusCode)
	}
	h.message = []byte(h.Message)
	if h.Message == "" {
		h.message = []byte(http.StatusText(h.StatusCode))
	}
	h.setHeader = h.CountryHeader == nil || *h.CountryHeader
	return nil
}

// Provision checks the settings, opens (or shares) the database and
// registers the metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.normalize(); err != nil {
		return err
	}
	m, err := newMetrics(ctx.GetMetricsRegistry(), h.Name)
	if err != nil {
		return fmt.Errorf("registering GeoIP metrics: %w", err)
	}
	h.metrics = m
	path := caddy.NewReplacer().ReplaceKnown(h.Database, "")
	db, err := openDatabase(path, time.Duration(h.ReloadInterval), h.logger)
	if err != nil {
		return err
	}
	h.db = db
	return nil
}

// Validate checks that the handler is ready.
func (h *Handler) Validate() error {
	if h.db == nil {
		return errors.New("not provisioned")
	}
	return nil
}

// Cleanup releases the database.
func (h *Handler) Cleanup() error {
	if h.db == nil {
		return nil
	}
	err := h.db.release()
	h.db = nil
	return err
}

// ServeHTTP looks the client up and blocks or passes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.Header.Del(CountryHeader)
	ip, country, err := h.lookup(r)
	if err != nil {
		if errors.Is(err, errNotFound) {
			h.metrics.failedNotFound.Inc()
		} else {
			h.metrics.failedErr.Inc()
		}
		if h.failClosed {
			h.metrics.blockedFailure.Inc()
			h.logger.Debug("GeoIP lookup failed; blocked (on_failure closed)", zap.String("filter", h.Name), zap.String("client_ip", ip), zap.Error(err))
			return h.block(w)
		}
		h.metrics.allowed.Inc()
		h.logger.Debug("GeoIP lookup failed; passed (on_failure open)", zap.String("filter", h.Name), zap.String("client_ip", ip), zap.Error(err))
		return next.ServeHTTP(w, r)
	}
	caddyhttp.SetVar(r.Context(), CountryVar, country)
	if h.setHeader {
		r.Header.Set(CountryHeader, country)
	}
	listed := h.countries[country]
	switch {
	case h.action == ActionLogOnly:
		if listed {
			h.logger.Info("request from a listed country (log only)", zap.String("filter", h.Name), zap.String("client_ip", ip), zap.String("country", country))
		}
	case listed == (h.action == ActionBlock):
		h.metrics.blockedCountry.Inc()
		h.logger.Debug("request blocked by country", zap.String("filter", h.Name), zap.String("client_ip", ip), zap.String("country", country))
		return h.block(w)
	}
	h.metrics.allowed.Inc()
	return next.ServeHTTP(w, r)
}

// lookup returns the client's address and its country.
func (h *Handler) lookup(r *http.Request) (string, string, error) {
	s := clientIP(r)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return s, "", fmt.Errorf("client address %q: %w", s, err)
	}
	country, err := h.db.country(ip)
	return s, country, err
}

// block answers the request with the status and message.
func (h *Handler) block(w http.ResponseWriter) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(h.message)))
	w.WriteHeader(h.StatusCode)
	_, _ = w.Write(h.message)
	return nil
}

// clientIP is the client address Caddy determined (through the server's
// trusted_proxies), else the connection's peer.
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
