package accesslog

import (
	"time"
	"unicode/utf8"

	"go.uber.org/zap/buffer"
)

// appendJSON writes the record as a JSON object, with the original
// Sentinel's keys in its order; empty optional values are left out.
func (r *record) appendJSON(buf *buffer.Buffer) {
	buf.AppendString(`{"timestamp":"`)
	appendTimestamp(buf, r.time)
	buf.AppendByte('"')
	addString(buf, "trace_id", r.traceID)
	addString(buf, "method", r.method)
	addString(buf, "path", r.path)
	addOptional(buf, "query", r.query)
	addString(buf, "protocol", r.protocol)
	addInt(buf, "status", r.status)
	addInt(buf, "body_bytes", r.bodyBytes)
	addInt(buf, "duration_ms", r.durationMS)
	addString(buf, "client_ip", r.clientIP)
	addOptional(buf, "user_agent", r.userAgent)
	addOptional(buf, "referer", r.referer)
	addOptional(buf, "host", r.host)
	addOptional(buf, "route_id", r.routeID)
	addOptional(buf, "namespace", r.namespace)
	addOptional(buf, "upstream", r.upstream)
	addInt(buf, "upstream_attempts", r.upstreamAttempts)
	addString(buf, "instance_id", r.instanceID)
	addInt(buf, "body_bytes_sent", r.bodyBytes)
	addOptional(buf, "upstream_addr", r.upstreamAddr)
	addBool(buf, "connection_reused", false)
	addBool(buf, "rate_limit_hit", r.status == 429)
	buf.AppendByte('}')
}

// appendCombined writes the record as a Combined Log Format line extended
// with the trace id and the duration:
//
//	<client_ip> - - [<time>] "<method> <path>[?<query>] <protocol>" <status> <body_bytes> "<referer>" "<user_agent>" <trace_id> <duration_ms>ms
//
// An empty referer, user agent or trace id is written as `-`. Quotes,
// backslashes and control characters are escaped as \xHH, like nginx does,
// so that a value cannot break the line's structure.
func (r *record) appendCombined(buf *buffer.Buffer) {
	appendCombinedText(buf, orDash(r.clientIP))
	buf.AppendString(" - - [")
	buf.AppendTime(r.time.UTC(), "02/Jan/2006:15:04:05 -0700")
	buf.AppendString(`] "`)
	appendCombinedText(buf, r.method)
	buf.AppendByte(' ')
	appendCombinedText(buf, r.path)
	if r.query != "" {
		buf.AppendByte('?')
		appendCombinedText(buf, r.query)
	}
	buf.AppendByte(' ')
	appendCombinedText(buf, r.protocol)
	buf.AppendString(`" `)
	buf.AppendInt(r.status)
	buf.AppendByte(' ')
	buf.AppendInt(r.bodyBytes)
	buf.AppendString(` "`)
	appendCombinedText(buf, orDash(r.referer))
	buf.AppendString(`" "`)
	appendCombinedText(buf, orDash(r.userAgent))
	buf.AppendString(`" `)
	appendCombinedText(buf, orDash(r.traceID))
	buf.AppendByte(' ')
	buf.AppendInt(r.durationMS)
	buf.AppendString("ms")
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendTimestamp writes t in UTC as RFC 3339 the way the original's
// chrono `to_rfc3339` did: with as many fractional digits as needed among
// 0, 3, 6 and 9, and a `+00:00` offset.
func appendTimestamp(buf *buffer.Buffer, t time.Time) {
	t = t.UTC()
	buf.AppendTime(t, "2006-01-02T15:04:05")
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1e6 == 0:
		buf.AppendTime(t, ".000")
	case ns%1e3 == 0:
		buf.AppendTime(t, ".000000")
	default:
		buf.AppendTime(t, ".000000000")
	}
	buf.AppendString("+00:00")
}

// addString writes `,"key":"value"`.
func addString(buf *buffer.Buffer, key, value string) {
	buf.AppendString(`,"`)
	buf.AppendString(key)
	buf.AppendString(`":`)
	appendJSONString(buf, value)
}

// addOptional writes `,"key":"value"` unless value is empty.
func addOptional(buf *buffer.Buffer, key, value string) {
	if value != "" {
		addString(buf, key, value)
	}
}

// addInt writes `,"key":value`.
func addInt(buf *buffer.Buffer, key string, value int64) {
	buf.AppendString(`,"`)
	buf.AppendString(key)
	buf.AppendString(`":`)
	buf.AppendInt(value)
}

// addBool writes `,"key":value`.
func addBool(buf *buffer.Buffer, key string, value bool) {
	buf.AppendString(`,"`)
	buf.AppendString(key)
	buf.AppendString(`":`)
	buf.AppendBool(value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and
// control characters are escaped, and invalid UTF-8 becomes U+FFFD.
func appendJSONString(buf *buffer.Buffer, s string) {
	buf.AppendByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf.AppendString(`\ufffd`)
			} else {
				buf.AppendString(s[i : i+size])
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			buf.AppendByte('\\')
			buf.AppendByte(c)
		case '\n':
			buf.AppendString(`\n`)
		case '\r':
			buf.AppendString(`\r`)
		case '\t':
			buf.AppendString(`\t`)
		default:
			if c < 0x20 {
				buf.AppendString(`\u00`)
				buf.AppendByte(hexDigits[c>>4])
				buf.AppendByte(hexDigits[c&0xf])
			} else {
				buf.AppendByte(c)
			}
		}
		i++
	}
	buf.AppendByte('"')
}

// appendCombinedText writes s for a combined log line, escaping quotes,
// backslashes, control characters and DEL as \xHH.
func appendCombinedText(buf *buffer.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			buf.AppendString(`\x`)
			buf.AppendByte(hexDigits[c>>4])
			buf.AppendByte(hexDigits[c&0xf])
			continue
		}
		buf.AppendByte(c)
	}
}
