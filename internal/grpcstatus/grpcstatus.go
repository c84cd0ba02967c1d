// Package grpcstatus holds what the handlers that answer gRPC calls
// themselves share: gRPC status codes, the HTTP to gRPC status mapping,
// the grpc-timeout header and the grpc-message encoding.
package grpcstatus

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The gRPC status codes the proxy answers with.
const (
	Unknown          = 2
	DeadlineExceeded = 4
	PermissionDenied = 7
	Unimplemented    = 12
	Internal         = 13
	Unavailable      = 14
	Unauthenticated  = 16
)

// FromHTTP maps an HTTP status to a gRPC status code, as
// https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md
// does.
func FromHTTP(status int) int {
	switch status {
	case http.StatusBadRequest:
		return Internal
	case http.StatusUnauthorized:
		return Unauthenticated
	case http.StatusForbidden:
		return PermissionDenied
	case http.StatusNotFound:
		return Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return Unavailable
	}
	return Unknown
}

// ParseTimeout parses a grpc-timeout header value: at most 8 digits and
// a unit (H, M, S, m, u, n).
func ParseTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	digits := v[:len(v)-1]
	if strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	n, _ := strconv.ParseInt(digits, 10, 64)
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if time.Duration(n) > math.MaxInt64/unit {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// EncodeMessage percent-encodes a grpc-message value as gRPC requires
// (bytes outside printable ASCII, and '%').
func EncodeMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%")
		b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
	}
	return b.String()
}
