package adaptive

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// attemptsVar is the request variable that holds the targets a request
// was sent to (an *attempts), in order. The sentinel transport adds one
// per attempt; the selection policies skip them when the proxy retries,
// so that a retry goes to another eligible target when there is one.
const attemptsVar = "sentinel.upstream_attempts"

// attemptsLogField is the access log field with the number of attempts.
const attemptsLogField = "upstream_attempts"

// attempts are the target addresses a request was sent to. It also holds
// the response body wrapper of the first attempt and the X-Real-IP value,
// so that the transport adds no allocation to a request sent once.
type attempts struct {
	addrs []string
	buf   [2]string
	body  releasingBody
	// bodyUsed is set once body is handed out (retries get new ones).
	bodyUsed bool
	// realIP is the value of the X-Real-IP header the transport sets.
	realIP [1]string
	// observe, when set, takes each attempt's time to the response
	// headers: the duration histogram of the upstream the request's
	// targets belong to (set by UpstreamsObserved).
	observe prometheus.Observer
}

// newBody returns a response body wrapper for an attempt: the one held
// in a for the first attempt, a new one after it (or without a).
func (a *attempts) newBody() *releasingBody {
	if a == nil || a.bodyUsed {
		return new(releasingBody)
	}
	a.bodyUsed = true
	return &a.body
}

// observed records an attempt's duration (nanoseconds) on the
// request's upstream histogram, if it has one.
func (a *attempts) observed(ns int64) {
	if a != nil && a.observe != nil {
		a.observe.Observe(float64(ns) / 1e9)
	}
}

// has reports whether the request was already sent to addr.
func (a *attempts) has(addr string) bool {
	if a == nil {
		return false
	}
	for _, x := range a.addrs {
		if x == addr {
			return true
		}
	}
	return false
}

// avail reports whether u can take this request: it is available and the
// request was not already sent to it.
func (a *attempts) avail(u *reverseproxy.Upstream) bool {
	return u.Available() && !a.has(u.Dial)
}

// len is the number of attempts.
func (a *attempts) len() int {
	if a == nil {
		return 0
	}
	return len(a.addrs)
}

// triedOf returns the targets r was already sent to (nil when none: the
// first attempt, or a request that did not go through the proxy).
func triedOf(r *http.Request) *attempts {
	if r == nil {
		return nil
	}
	vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if !ok {
		return nil
	}
	a, _ := vars[attemptsVar].(*attempts)
	if a.len() == 0 {
		return nil
	}
	return a
}

// Tried returns the target addresses the request was sent to, in order
// (nil before the first attempt). The sentinel transport records them.
func Tried(r *http.Request) []string {
	if a := triedOf(r); a != nil {
		return append([]string(nil), a.addrs...)
	}
	return nil
}

// markTried records that req is sent to addr, and the number of attempts
// in the access log entry when there is more than one. The record is the
// one Upstreams put in the block of the request's upstreams, or a new one
// (a static or another dynamic upstream source). It returns the request's attempts (nil for a
// request without variables).
func markTried(req *http.Request, addr string) *attempts {
	ctx := req.Context()
	vars, ok := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any)
	if !ok {
		return nil
	}
	a, _ := vars[attemptsVar].(*attempts)
	if a == nil {
		a = new(attempts)
		a.addrs = a.buf[:0]
		vars[attemptsVar] = a
	}
	a.addrs = append(a.addrs, addr)
	// The access log gets the number only for a retried request: setting
	// an extra log field costs three allocations, and 1 is what a log
	// reader assumes without it (the sentinel_access encoder writes 1
	// when the request has an upstream address and no count).
	if len(a.addrs) > 1 {
		if extra, ok := ctx.Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
			extra.Set(zap.Int(attemptsLogField, len(a.addrs)))
		}
	}
	return a
}

// selectUntried runs sel with the targets r was already sent to excluded
// and, when that leaves none, with none excluded: a retry goes to another
// eligible target when one exists, else to one already tried.
func selectUntried(r *http.Request, sel func(ex *attempts) int) int {
	ex := triedOf(r)
	i := sel(ex)
	if i < 0 && ex != nil {
		i = sel(nil)
	}
	return i
}
