package builtin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/internal/grpcstatus"
)

// isGRPC reports whether r is a native gRPC call. (gRPC-Web calls are
// answered by their own filter, grpc_web.)
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") && !strings.HasPrefix(ct, "application/grpc-web")
}

// writeGRPCError answers a gRPC call's error as gRPC clients expect: a
// trailers-only response (HTTP 200, grpc-status and grpc-message, no
// body) instead of a JSON body they cannot read. A call whose own
// deadline (grpc-timeout) has passed gets DEADLINE_EXCEEDED, whatever
// the upstream failure that ended it; others get the status of gRPC's
// HTTP mapping (502, 503, 504: UNAVAILABLE).
func writeGRPCError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	code := grpcstatus.FromHTTP(status)
	if deadlinePassed(r) {
		code, msg = grpcstatus.DeadlineExceeded, "deadline exceeded"
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcstatus.EncodeMessage(msg))
	w.WriteHeader(http.StatusOK)
}

// deadlinePassed reports whether the call's grpc-timeout has passed
// since the proxy received it (within 5 %, the clock skew of the two
// ends).
func deadlinePassed(r *http.Request) bool {
	timeout, ok := grpcstatus.ParseTimeout(r.Header.Get("Grpc-Timeout"))
	if !ok {
		return false
	}
	start, ok := caddyhttp.GetVar(r.Context(), "start_time").(time.Time)
	if !ok {
		return false
	}
	return time.Since(start) >= timeout-timeout/20
}
