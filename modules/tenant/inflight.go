package tenant

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(InFlight{})
}

// inFlightZones holds the counters of the in-flight zones in use, so that
// the handlers of a zone (every route of a namespace, in every server)
// share one count, and a reload that keeps the zone keeps counting the
// requests the old config still serves. It is Caddy's mechanism for state
// shared by module instances (reverse_proxy and sentinel_rate_limit keep
// theirs the same way).
var inFlightZones = caddy.NewUsagePool()

// InFlight limits the requests in flight through the handlers of one
// zone: the KDL adapter puts one on every route of a namespace (or
// service) whose limits { } set max-in-flight-requests, so that a tenant
// cannot hold more of the proxy's concurrency than its share. A request
// over the limit is answered at once (503 with Retry-After: 1 and a JSON
// body), never queued.
type InFlight struct {
	// Zone names the count: handlers of the same zone and Max share it.
	// Required.
	Zone string `json:"zone"`

	// Max is the most requests in flight in the zone. Required (1 or
	// more).
	Max int64 `json:"max"`

	// Status is the answer's status (400 to 599). Default 503.
	Status int `json:"status,omitempty"`

	count   *inFlightCount
	poolKey string
	body    []byte
	logger  *zap.Logger
}

// inFlightCount is a zone's count.
type inFlightCount struct{ n atomic.Int64 }

// Destruct implements caddy.Destructor.
func (*inFlightCount) Destruct() error { return nil }

// CaddyModule returns the Caddy module information.
func (InFlight) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.sentinel_inflight", New: func() caddy.Module { return new(InFlight) }}
}

// Provision finds the zone's count.
func (h *InFlight) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.poolKey = h.Zone + "\x00" + strconv.FormatInt(h.Max, 10)
	v, _, err := inFlightZones.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) { return new(inFlightCount), nil })
	if err != nil {
		return err
	}
	h.count = v.(*inFlightCount)
	h.body, _ = json.Marshal(map[string]string{"error": fmt.Sprintf("too many requests in flight for %s (at most %d)", h.Zone, h.Max)})
	h.body = append(h.body, '\n')
	if h.Status == 0 {
		h.Status = http.StatusServiceUnavailable
	}
	return nil
}

// Validate checks the configuration.
func (h *InFlight) Validate() error {
	if h.Zone == "" {
		return fmt.Errorf("zone is required")
	}
	if h.Max < 1 {
		return fmt.Errorf("max %d: must be 1 or more", h.Max)
	}
	if h.Status != 0 && (h.Status < 400 || h.Status > 599) {
		return fmt.Errorf("status %d is not an error status (400 to 599)", h.Status)
	}
	return nil
}

// Cleanup releases the zone's count.
func (h *InFlight) Cleanup() error {
	if h.poolKey == "" {
		return nil
	}
	_, err := inFlightZones.Delete(h.poolKey)
	return err
}

// ServeHTTP counts the request in, or answers when the zone is full.
func (h *InFlight) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.count.n.Add(1) > h.Max {
		h.count.n.Add(-1)
		h.logger.Debug("too many requests in flight", zap.String("zone", h.Zone), zap.Int64("max", h.Max))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Length", strconv.Itoa(len(h.body)))
		w.WriteHeader(h.Status)
		_, err := w.Write(h.body)
		return err
	}
	defer h.count.n.Add(-1)
	return next.ServeHTTP(w, r)
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*InFlight)(nil)
	_ caddy.Provisioner           = (*InFlight)(nil)
	_ caddy.Validator             = (*InFlight)(nil)
	_ caddy.CleanerUpper          = (*InFlight)(nil)
)
