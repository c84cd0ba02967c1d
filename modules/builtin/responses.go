package builtin

import (
	"net/http"
	"runtime/debug"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// processStart approximates the time the process started: it is set once,
// when the package is initialized, and never changed.
var processStart = time.Now()

// modulePath is the import path of Sentinel's Go module, whose version
// the status response reports when the binary records it.
const modulePath = "github.com/sentinel-proxy/sentinel"

// serviceName is the service name in the status response.
const serviceName = "sentinel"

// responders maps every kind to the function producing its response.
// Adding a kind means adding its constant and one entry here.
func (b *Builtin) responders() map[string]responder {
	return map[string]responder{
		KindStatus:   b.status,
		KindHealth:   b.health,
		KindNotFound: b.notFound,
	}
}

// statusBody is the body of the status response.
type statusBody struct {
	Status        string `json:"status"`
	Service       string `json:"service"`
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptime_seconds"`
}

// status reports that the service is up, with its version and uptime.
func (b *Builtin) status(*http.Request) (int, any) {
	return http.StatusOK, statusBody{
		Status:        "ok",
		Service:       serviceName,
		Version:       b.version,
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

// version returns Sentinel's module version if the binary records a
// released or pseudo-version of it, otherwise Caddy's simple version.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := moduleVersion(bi); v != "" {
			return v
		}
	}
	simple, _ := caddy.Version()
	return simple
}

// moduleVersion returns the recorded version of Sentinel's module, or ""
// if bi has none (or only "(devel)", as in development builds and tests).
func moduleVersion(bi *debug.BuildInfo) string {
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for _, m := range mods {
		if m != nil && m.Path == modulePath && m.Version != "" && m.Version != "(devel)" {
			return m.Version
		}
	}
	return ""
}
