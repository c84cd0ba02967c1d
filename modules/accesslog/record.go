package accesslog

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// The names of the entry fields the encoder reads. Caddy's HTTP server
// writes the first four with every access log entry; the others are
// added by `log_append` handlers (see the package documentation).
const (
	fieldRequest          = "request"
	fieldStatus           = "status"
	fieldSize             = "size"
	fieldDuration         = "duration"
	fieldTraceID          = "trace_id"
	fieldRouteID          = "route_id"
	fieldUpstream         = "upstream"
	fieldUpstreamAddr     = "upstream_addr"
	fieldUpstreamAttempts = "upstream_attempts"
	// fieldNamespace is the tenant the sentinel_tenant handler identified.
	fieldNamespace = "namespace"

	// fieldUUID is the request id Caddy itself adds to the access log
	// entry once `{http.request.uuid}` has been evaluated; it stands in
	// for a missing trace_id.
	fieldUUID = "uuid"
)

// isRead reports whether the encoder reads the entry field named key.
func isRead(key string) bool {
	switch key {
	case fieldRequest, fieldStatus, fieldSize, fieldDuration, fieldTraceID, fieldRouteID,
		fieldUpstream, fieldUpstreamAddr, fieldUpstreamAttempts, fieldUUID, fieldNamespace:
		return true
	}
	return false
}

// record is an access log entry, with the original Sentinel's fields.
type record struct {
	time             time.Time
	traceID          string
	method           string
	path             string
	query            string
	protocol         string
	status           int64
	bodyBytes        int64
	durationMS       int64
	clientIP         string
	userAgent        string
	referer          string
	host             string
	routeID          string
	namespace        string
	upstream         string
	upstreamAttempts int64
	instanceID       string
	upstreamAddr     string
}

// newRecord builds the record of an access log entry from the entry and
// its fields, as collected by a zapcore.MapObjectEncoder. It reports false
// when the fields have no `request` object, i.e. the entry is not an
// access log entry.
func newRecord(ent zapcore.Entry, fields map[string]any, instanceID string) (record, bool) {
	req, ok := fields[fieldRequest].(map[string]any)
	if !ok {
		return record{}, false
	}
	rec := record{
		time:         ent.Time,
		traceID:      text(fields[fieldTraceID]),
		method:       text(req["method"]),
		protocol:     text(req["proto"]),
		status:       integer(fields[fieldStatus]),
		bodyBytes:    integer(fields[fieldSize]),
		durationMS:   milliseconds(fields[fieldDuration]),
		clientIP:     text(req["client_ip"]),
		host:         text(req["host"]),
		routeID:      text(fields[fieldRouteID]),
		namespace:    text(fields[fieldNamespace]),
		upstream:     text(fields[fieldUpstream]),
		instanceID:   instanceID,
		upstreamAddr: text(fields[fieldUpstreamAddr]),
	}
	rec.path, rec.query = splitURI(text(req["uri"]))
	if rec.traceID == "" {
		rec.traceID = text(fields[fieldUUID])
	}
	if rec.clientIP == "" {
		rec.clientIP = text(req["remote_ip"])
	}
	if headers, ok := req["headers"].(map[string]any); ok {
		rec.userAgent = header(headers, "User-Agent")
		rec.referer = header(headers, "Referer")
	}
	if v, ok := fields[fieldUpstreamAttempts]; ok {
		rec.upstreamAttempts = integer(v)
	} else if rec.upstreamAddr != "" {
		// an upstream answered, so at least one attempt was made
		rec.upstreamAttempts = 1
	}
	return rec, true
}

// splitURI splits a request URI into its path and its query (without the
// `?`). A URI in absolute form (a proxy request) is reduced to its path.
func splitURI(uri string) (path, query string) {
	if uri != "" && uri[0] != '/' && strings.Contains(uri, "://") {
		if u, err := url.Parse(uri); err == nil && u.Host != "" {
			path = u.EscapedPath()
			if path == "" {
				path = "/"
			}
			return path, u.RawQuery
		}
	}
	path, query, _ = strings.Cut(uri, "?")
	return path, query
}

// header returns the first value of the header name from a `headers`
// object, whose values are arrays of strings. The name is looked up
// exactly first (Caddy logs canonical names), then case-insensitively.
func header(headers map[string]any, name string) string {
	v, ok := headers[name]
	if !ok {
		for k, hv := range headers {
			if strings.EqualFold(k, name) {
				v, ok = hv, true
				break
			}
		}
	}
	if !ok {
		return ""
	}
	switch vals := v.(type) {
	case []any:
		if len(vals) > 0 {
			return text(vals[0])
		}
	case []string:
		if len(vals) > 0 {
			return vals[0]
		}
	default:
		return text(v)
	}
	return ""
}

// text returns a field value as a string: strings as they are, numbers
// and booleans formatted, and "" for nil and for other values (objects,
// arrays).
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case fmt.Stringer:
		return v.String()
	case error:
		return v.Error()
	case bool:
		return strconv.FormatBool(v)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return fmt.Sprint(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	}
	return ""
}

// integer returns a numeric field value (or a string holding an integer)
// as an int64; floats are truncated, anything else is 0.
func integer(v any) int64 {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	case uint:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return int64(v)
	case float64:
		return truncate(v)
	case float32:
		return truncate(float64(v))
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// milliseconds returns a duration field value in whole milliseconds
// (truncated, like the original's Duration::as_millis). The value may be
// a time.Duration (Caddy's `duration` field), a number of seconds (how
// the JSON encoder writes it) or a Go duration string.
func milliseconds(v any) int64 {
	switch v := v.(type) {
	case time.Duration:
		return v.Milliseconds()
	case float64:
		return truncate(v * 1e3)
	case float32:
		return truncate(float64(v) * 1e3)
	case string:
		d, _ := time.ParseDuration(v)
		return d.Milliseconds()
	}
	return 0
}

// truncate converts f to an int64, truncating toward zero; NaN and values
// out of range give 0.
func truncate(f float64) int64 {
	if math.IsNaN(f) || f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0
	}
	return int64(f)
}
