package kdladapter

import (
	"runtime"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// The `system` block (and `server`, its deprecated name) is declared in
// two groups, by the struct its settings go to: the http app's
// (caddyhttp.App: the grace period; the settings that only are checked
// are there too) and Caddy's admin endpoint (caddy.AdminConfig).
var (
	systemHTTP = nested("system", "",
		check[caddyhttp.App]("worker-threads", "`0` = all cores, as Go does; other values: warning (set GOMAXPROCS)", func(a *adapter, n *kdl.Node) {
			if i, ok := a.integer(n, 0, 1<<16); ok && i != 0 && int(i) != runtime.NumCPU() {
				a.d.warnf(n.Pos, "system.worker-threads", "worker-threads %d is not applied: set GOMAXPROCS=%d in the environment instead", i, i)
			}
		}),
		field[caddyhttp.App]{key: w("max-connections", "no global connection limit yet")},
		secondsField("graceful-shutdown-timeout-secs", "of the http app; also every reverse_proxy's `stream_close_delay`: how long WebSockets and other upgraded connections outlive a reload (30 s when unset)", func(app *caddyhttp.App) *caddy.Duration { return &app.GracePeriod }),
		check[caddyhttp.App]("daemon", "`#false` only; run under a supervisor (systemd, Kubernetes)", func(a *adapter, n *kdl.Node) {
			if b, ok := a.boolean(n); ok && b {
				a.d.warnf(n.Pos, "system.daemon", "daemon #true is not applied: run sentinel under a supervisor (systemd, Kubernetes) or use `sentinel start`")
			}
		}),
		field[caddyhttp.App]{key: w("pid-file", "use `sentinel run --pidfile FILE`")},
		field[caddyhttp.App]{key: w("user", "start the process as that user (systemd `User=`, Kubernetes `runAsUser`)")},
		field[caddyhttp.App]{key: w("group", "start the process with that group")},
		field[caddyhttp.App]{key: w("working-directory", "start the process in that directory")},
		check[caddyhttp.App]("trace-id-format", "`uuid` is Caddy's request id; `tinyflake`: warning", func(a *adapter, n *kdl.Node) {
			if s, ok := a.str(n); ok {
				if f, ok := a.oneOf(n, s, "tinyflake", "uuid"); ok && f == "tinyflake" {
					a.d.warnf(n.Pos, "system.trace-id-format", "trace-id-format \"tinyflake\" is not available: request ids are UUIDs")
				}
			}
		}),
		check[caddyhttp.App]("auto-reload", "`#false` only; use `sentinel run --watch`", func(a *adapter, n *kdl.Node) {
			if b, ok := a.boolean(n); ok && b {
				a.d.warnf(n.Pos, "system.auto-reload", "auto-reload #true is not applied from the file: use `sentinel run --watch`")
			}
		}),
		check[caddyhttp.App]("route-cache-size", "accepted; routes are matched without a cache", func(a *adapter, n *kdl.Node) {
			a.integer(n, 1, 1<<40)
		}),
	)
	systemAdmin = nested("system", "",
		custom("caddy-admin", "of Caddy's `admin` (`disabled` for `off`): the admin endpoint address (`localhost:2019`, `unix//path|0600`), or `off`; default: off when `admin-api` is on, else Caddy's `localhost:2019`",
			func(c *caddy.AdminConfig) *string { return &c.Listen },
			func(a *adapter, n *kdl.Node, c *caddy.AdminConfig) {
				if s, ok := a.str(n); ok {
					if strings.EqualFold(s, "off") {
						c.Disabled = true
					} else {
						c.Listen = s
					}
				}
			}).extension(),
	)
)

// check is a setting of any block that is only checked (and maybe
// warned about): it has no field.
func check[T any](name, note string, read func(a *adapter, n *kdl.Node)) field[T] {
	return field[T]{key: h(name, note), read: func(a *adapter, n *kdl.Node, _ *T) { read(a, n) }}
}

func systemKeys(name string) *Key {
	k := h(name, "process settings")
	k.Children = append(append([]*Key(nil), systemHTTP.key.Children...), systemAdmin.key.Children...)
	return k
}

// mapSystem maps the `system` block onto the http app (httpApp, of which
// it sets the grace period) and Caddy's admin endpoint (nil: Caddy's
// default). Without caddy-admin, the admin endpoint is off when the
// control-plane API is on: Caddy's admin endpoint has no authentication
// (it shows the whole config and accepts a new one: POST /load
// '{"apps":{}}' stops the proxy), the API has tokens.
func (a *adapter) mapSystem() (httpApp *caddyhttp.App, admin *caddy.AdminConfig) {
	httpApp = new(caddyhttp.App)
	defer func() { a.streamCloseDelay = streamCloseDelay(httpApp.GracePeriod) }()
	if a.system != nil {
		systemHTTP.read(a, a.system, httpApp)
		if setting(a.system, "caddy-admin") != nil {
			admin = new(caddy.AdminConfig)
			systemAdmin.read(a, a.system, admin)
			return httpApp, admin
		}
	}
	if a.apiEnabled() {
		admin = &caddy.AdminConfig{Disabled: true}
	}
	return httpApp, admin
}

// defaultStreamCloseDelay is how long upgraded connections outlive a
// reload when the config sets no grace period: the original's default
// graceful-shutdown-timeout-secs.
const defaultStreamCloseDelay = 30 * time.Second

// streamCloseDelay is the reverse proxies' stream_close_delay for a
// grace period: the grace period itself, or defaultStreamCloseDelay when
// it is Caddy's eternal one. Without it, Caddy's reverse proxy closes
// every WebSocket and other upgraded connection of the old config as soon
// as a reload replaces it.
func streamCloseDelay(grace caddy.Duration) string {
	if grace <= 0 {
		return defaultStreamCloseDelay.String()
	}
	return time.Duration(grace).String()
}
