package adaptive

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// Upstreams returns fresh Upstream values dialing addrs, for one attempt
// of r, in one allocation for up to 8 addresses (two above). The same
// block holds the record of the request's attempts that the sentinel
// transport keeps (see markTried), registered in the request's variables
// on its first attempt, so that a request proxied once costs a dynamic
// upstream source one allocation in all.
//
// The values cannot be cached and shared between requests: Caddy's
// reverse proxy provisions every dynamic upstream on every attempt
// (provisionUpstream writes its Host, circuit breaker, MaxRequests and
// passive health policy), so concurrent requests sharing one value would
// race; Caddy's own dynamic sources copy their cached values per request
// for the same reason.
func Upstreams(r *http.Request, addrs []string) []*reverseproxy.Upstream {
	return UpstreamsObserved(r, addrs, nil)
}

// UpstreamsObserved is Upstreams whose attempts the sentinel transport
// also observes on obs (when not nil): each attempt's time to the
// response headers, or to its failure (an attempt the client canceled
// is not observed). obs is the upstream's duration histogram, looked up
// once by the caller, so that observing allocates nothing.
func UpstreamsObserved(r *http.Request, addrs []string, obs prometheus.Observer) []*reverseproxy.Upstream {
	var vars map[string]any
	if r != nil {
		vars, _ = r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	}
	// The values, the pointers to them and an attempts record in one
	// block, in the size classes of small pools.
	switch n := len(addrs); {
	case n == 0:
		return nil
	case n == 1:
		b := new(struct {
			a attempts
			u [1]reverseproxy.Upstream
			p [1]*reverseproxy.Upstream
		})
		return fillBlock(vars, &b.a, obs, addrs, b.u[:], b.p[:])
	case n <= 2:
		b := new(struct {
			a attempts
			u [2]reverseproxy.Upstream
			p [2]*reverseproxy.Upstream
		})
		return fillBlock(vars, &b.a, obs, addrs, b.u[:n], b.p[:n])
	case n <= 4:
		b := new(struct {
			a attempts
			u [4]reverseproxy.Upstream
			p [4]*reverseproxy.Upstream
		})
		return fillBlock(vars, &b.a, obs, addrs, b.u[:n], b.p[:n])
	case n <= 8:
		b := new(struct {
			a attempts
			u [8]reverseproxy.Upstream
			p [8]*reverseproxy.Upstream
		})
		return fillBlock(vars, &b.a, obs, addrs, b.u[:n], b.p[:n])
	}
	return fillBlock(vars, nil, obs, addrs, make([]reverseproxy.Upstream, len(addrs)), make([]*reverseproxy.Upstream, len(addrs)))
}

// fillBlock registers a (a new record when nil) as the request's attempts
// record when it has none yet, sets the record's observer to obs, sets
// the dial addresses of ups and points out at them; addrs, ups and out
// have the same length.
func fillBlock(vars map[string]any, a *attempts, obs prometheus.Observer, addrs []string, ups []reverseproxy.Upstream, out []*reverseproxy.Upstream) []*reverseproxy.Upstream {
	if vars != nil {
		rec, ok := vars[attemptsVar].(*attempts)
		if !ok {
			if a == nil {
				a = new(attempts)
			}
			a.addrs = a.buf[:0]
			vars[attemptsVar] = a
			rec = a
		}
		// The upstream of this attempt (a later proxy handler of the
		// same request may send it to another upstream).
		rec.observe = obs
	}
	for i, addr := range addrs {
		ups[i].Dial = addr
		out[i] = &ups[i]
	}
	return out
}
