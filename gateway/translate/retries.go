package translate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// retriedMethods are the methods whose requests are retried: those
// without a body in practice (a request body is streamed to the backend,
// not kept for a second attempt), and idempotent.
var retriedMethods = []string{"GET", "HEAD", "OPTIONS", "TRACE"}

// ruleRetry returns the reverse proxy's load_balancing retry settings of
// a rule's retry (nil: none): attempts (default 1) become Caddy's
// retries, backoff the wait between attempts, and codes a retry_match
// expression on the backend's status (Caddy retries a response whose
// status matches: it is dropped, the request sent again, and when the
// attempts are spent the client gets that status). Connection failures
// before the request was sent (dial errors) are retried too.
func ruleRetry(r *gwv1.HTTPRouteRetry, ri int) (map[string]any, *refError) {
	if r == nil {
		return nil, nil
	}
	attempts := 1
	if r.Attempts != nil {
		attempts = *r.Attempts
	}
	if attempts < 1 {
		return nil, nil
	}
	lb := map[string]any{"retries": attempts}
	if r.Backoff != nil {
		d, err := time.ParseDuration(string(*r.Backoff))
		if err != nil || d < 0 {
			return nil, &refError{gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("rules[%d].retry.backoff: %q is not a duration", ri, string(*r.Backoff))}
		}
		if d > 0 {
			lb["try_interval"] = d.String()
		}
	}
	if len(r.Codes) > 0 {
		codes := make([]string, len(r.Codes))
		for i, c := range r.Codes {
			if c < 400 || c > 599 {
				return nil, &refError{gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("rules[%d].retry.codes[%d]: %d is not a 4xx or 5xx status", ri, i, c)}
			}
			codes[i] = strconv.Itoa(int(c))
		}
		methods := make([]string, len(retriedMethods))
		for i, m := range retriedMethods {
			methods[i] = strconv.Quote(m)
		}
		expr := "{http.reverse_proxy.status_code} in [" + strings.Join(codes, ", ") + "] && {http.request.method} in [" + strings.Join(methods, ", ") + "]"
		lb["retry_match"] = []any{map[string]any{"expression": expr}}
	}
	return lb, nil
}
