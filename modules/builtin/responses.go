package builtin

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/buildinfo"
	"github.com/sentinel-proxy/sentinel/internal/httperr"
	"github.com/sentinel-proxy/sentinel/internal/upstreamview"
)

// processStart approximates the time the process started: it is set once,
// when the package is initialized, and never changed.
var processStart = time.Now()

// serviceName is the service name in the status response.
const serviceName = "sentinel"

// responders maps every kind to the function producing its response.
// Adding a kind means adding its constant and one entry here.
func (b *Builtin) responders() map[string]responder {
	return map[string]responder{
		KindStatus:    b.status,
		KindHealth:    b.health,
		KindNotFound:  b.notFound,
		KindUpstreams: b.upstreams,
		KindConfig:    b.config,
		KindError:     b.handlerError,
		KindReady:     b.ready,
	}
}

// statusBody is the body of the status response.
type statusBody struct {
	Status        string `json:"status"`
	Service       string `json:"service"`
	Version       string `json:"version"`
	CaddyVersion  string `json:"caddy_version"`
	UptimeSeconds int64  `json:"uptime_seconds"`
}

// status reports that the service is up, with its version and uptime.
func (b *Builtin) status(*http.Request) (int, any) {
	return http.StatusOK, statusBody{
		Status:        "ok",
		Service:       serviceName,
		Version:       b.version,
		CaddyVersion:  buildinfo.CaddyVersion(),
		UptimeSeconds: int64(time.Since(processStart) / time.Second),
	}
}

// healthBody is the body of the health response.
type healthBody struct {
	Status string `json:"status"`
}

// health reports that the service is healthy.
func (b *Builtin) health(*http.Request) (int, any) {
	return http.StatusOK, healthBody{Status: "healthy"}
}

// errorBody is the body of error responses.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// notFound answers that nothing is routed here.
func (b *Builtin) notFound(*http.Request) (int, any) {
	return http.StatusNotFound, errorBody{Error: "not found", Status: http.StatusNotFound}
}

// version returns Sentinel's version (the VERSION file, see
// internal/buildinfo).
func version() string { return buildinfo.Version() }

// upstreamViews reads the registry.
func (b *Builtin) upstreamViews() []upstreamview.Upstream { return upstreamview.All(b.reg) }

// upstreams lists the registry's upstreams.
func (b *Builtin) upstreams(*http.Request) (int, any) {
	return http.StatusOK, map[string]any{"upstreams": b.upstreamViews()}
}

// config shows the runtime configuration of the registries.
func (b *Builtin) config(*http.Request) (int, any) {
	return http.StatusOK, map[string]any{"upstreams": b.upstreamViews(), "routes": b.reg.Routes()}
}

// handlerError answers the error being handled by a server's error
// routes. The body names the status, not the internal cause (which may
// hold upstream addresses): that is in the log, under the same id. An
// httperr.Public error gives the body's message and extra fields itself.
func (b *Builtin) handlerError(r *http.Request) (int, any) {
	status, id := http.StatusInternalServerError, ""
	var pub *httperr.Public
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if v, ok := repl.Get("http.error"); ok {
			if err, ok := v.(error); ok {
				pub = httperr.As(err)
			}
		}
		if v, ok := repl.Get("http.error.status_code"); ok {
			if code, ok := v.(int); ok && code >= 400 && code <= 599 {
				status = code
			}
		}
		id, _ = repl.GetString("http.error.id")
	}
	msg := http.StatusText(status)
	switch status {
	case http.StatusServiceUnavailable:
		msg = "no upstream target is available"
	case http.StatusBadGateway:
		msg = "the upstream did not answer"
	case http.StatusGatewayTimeout:
		msg = "the upstream did not answer in time"
	case http.StatusRequestEntityTooLarge:
		msg = "request body too large"
	}
	if pub != nil {
		if pub.Message != "" {
			msg = pub.Message
		}
		if len(pub.Fields) > 0 {
			body := make(map[string]any, len(pub.Fields)+3)
			for k, v := range pub.Fields {
				body[k] = v
			}
			body["error"], body["status"] = msg, status
			if id != "" {
				body["id"] = id
			} else {
				delete(body, "id")
			}
			return status, body
		}
	}
	return status, errorBodyWithID{Error: msg, Status: status, ID: id}
}

// errorBodyWithID is an error body with the error's log id.
type errorBodyWithID struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	ID     string `json:"id,omitempty"`
}

// ready reports whether the config of this handler has started: Caddy
// makes a config the active one only after every app of it started. A
// config that was active once stays ready while a newer one takes over.
func (b *Builtin) ready(*http.Request) (int, any) {
	// Handlers get a context derived from the config's (the http app adds
	// values); both share the config's cancellation, hence its Done channel.
	if b.started != nil && !b.started.Load() && b.ctx != nil {
		if active := caddy.ActiveContext().Context; active != nil && active.Done() == b.ctx.Done() {
			b.started.Store(true)
		}
	}
	if b.started == nil || !b.started.Load() {
		return http.StatusServiceUnavailable, healthBody{Status: "starting"}
	}
	return http.StatusOK, healthBody{Status: "ready"}
}
