// Package accesslog provides the `sentinel_access` log encoder, which
// writes Caddy's HTTP access log entries with the fields (and in the
// formats) of the original Sentinel's access log: a JSON object with a
// fixed set of keys, or an Apache/nginx "combined" line extended with the
// trace id and the duration.
//
// The encoder reads what Caddy puts in an access log entry (the `request`
// object, `status`, `size` and `duration`) and these extra fields, which
// the KDL adapter adds with `log_append` handlers:
//
//   - trace_id: the request's trace id, `{http.request.uuid}`;
//   - route_id: the id of the route that handled the request;
//   - upstream: the id of the upstream group it was proxied to;
//   - upstream_addr: the address that answered,
//     `{http.reverse_proxy.upstream.hostport}`;
//   - upstream_attempts (optional): how many upstream attempts were made;
//     without it, 1 when there is an upstream_addr and 0 otherwise;
//   - namespace (optional): the tenant the sentinel_tenant handler
//     identified (added by that handler, not by log_append).
//
// A missing trace_id falls back to the `uuid` field that Caddy adds once
// `{http.request.uuid}` has been evaluated, and then to "".
//
// Entries that are not access log entries (they have no `request` object)
// are written as Caddy's plain JSON encoder would write them.
package accesslog

import (
	"fmt"
	"os"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/logging"
)

func init() {
	caddy.RegisterModule(Encoder{})
}

// The styles of access log line the encoder can write.
const (
	// StyleJSON writes one JSON object per entry (the default).
	StyleJSON = "json"
	// StyleCombined writes the Combined Log Format extended with the
	// trace id and the duration in milliseconds.
	StyleCombined = "combined"
)

// Encoder is a Caddy log encoder (a zapcore.Encoder) that writes access
// log entries the way the original Sentinel did. Use it as a log's
// encoder:
//
//	"encoder": {"format": "sentinel_access", "style": "combined"}
//
// Note that `format` is the key that selects the encoder module in Caddy's
// `caddy.logging.encoders` namespace, so the choice between the original
// Sentinel's two formats (`json` and `combined`) is made with `style`.
//
// In JSON style an entry has these keys, in this order; the ones marked
// optional are left out when empty:
//
//	timestamp, trace_id, method, path, query (optional), protocol, status,
//	body_bytes, duration_ms, client_ip, user_agent (optional),
//	referer (optional), host (optional), route_id (optional),
//	namespace (optional), upstream (optional), upstream_attempts, instance_id, body_bytes_sent,
//	upstream_addr (optional), connection_reused, rate_limit_hit
//
// In combined style an entry is one line:
//
//	<client_ip> - - [<02/Jan/2006:15:04:05 -0700>] "<method> <path>[?<query>] <protocol>" <status> <body_bytes> "<referer|->" "<user_agent|->" <trace_id|-> <duration_ms>ms
//
// Entries that are not access log entries are written as JSON by the
// embedded encoder, which is configured like Caddy's `json` encoder.
type Encoder struct {
	// The embedded JSON encoder writes the entries that are not access
	// log entries; set up by Provision.
	zapcore.Encoder `json:"-"`

	// The style of the access log lines: `json` (the default) for one
	// JSON object per line, or `combined` for the Combined Log Format
	// extended with the trace id and the duration.
	Style string `json:"style,omitempty"`

	// The proxy instance's id, written as `instance_id`. Defaults to the
	// host name of the machine.
	InstanceID string `json:"instance_id,omitempty"`

	// pool holds the buffers of the encoded entries; clones share it.
	pool buffer.Pool

	// context holds the fields added to this encoder (a logger's With
	// fields, such as Caddy's `request` object), in order; it is copied
	// by Clone.
	context []zapcore.Field
}

// CaddyModule returns the Caddy module information.
func (Encoder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.encoders.sentinel_access",
		New: func() caddy.Module { return new(Encoder) },
	}
}

// Provision sets up the encoder: it fills in the defaults and creates the
// embedded JSON encoder and the buffer pool.
func (e *Encoder) Provision(_ caddy.Context) error {
	if e.Style == "" {
		e.Style = StyleJSON
	}
	if e.InstanceID == "" {
		e.InstanceID = defaultInstanceID()
	}
	e.Encoder = zapcore.NewJSONEncoder(new(logging.LogEncoderConfig).ZapcoreEncoderConfig())
	e.pool = buffer.NewPool()
	return nil
}

// Validate ensures the style is known.
func (e *Encoder) Validate() error {
	return validStyle(e.Style)
}

// validStyle returns an error unless style is a known style (or empty,
// for the default).
func validStyle(style string) error {
	switch style {
	case "", StyleJSON, StyleCombined:
		return nil
	}
	return fmt.Errorf("unknown sentinel_access style %q: want %q or %q", style, StyleJSON, StyleCombined)
}

// defaultInstanceID returns the host name, or "unknown" when it cannot be
// determined.
func defaultInstanceID() string {
	if name, err := os.Hostname(); err == nil && name != "" {
		return name
	}
	return "unknown"
}

// Interface guards
var (
	_ caddy.Module      = (*Encoder)(nil)
	_ caddy.Provisioner = (*Encoder)(nil)
	_ caddy.Validator   = (*Encoder)(nil)
	_ zapcore.Encoder   = (*Encoder)(nil)
)
