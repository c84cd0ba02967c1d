package routematch

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// requestPath returns the request path in the form the path conditions are
// evaluated against: decoded (unescaped), with `.` and `..` segments
// resolved and repeated slashes merged, a trailing slash preserved. This is
// the normalization Caddy's own path matchers apply, so the two cannot
// disagree about which resource a request names. An empty path is `/`
// (an absolute-form target such as `http://host`), except for a CONNECT
// request, whose target is an authority and which has no path: it is ""
// and matches no path condition.
func requestPath(r *http.Request) string {
	if r.Method == http.MethodConnect && r.URL.Path == "" {
		return ""
	}
	p := caddyhttp.NormalizedPath(r.URL.Path, true)
	if p == "" {
		return "/"
	}
	return p
}

// RequestPath is the normalised path of r that route matching evaluates
// (see requestPath). Agents and WASM plugins are given this path, so that
// they judge the resource the route was chosen for, not a spelling of it.
func RequestPath(r *http.Request) string { return requestPath(r) }

// hasPathPrefix reports whether reqPath falls under prefix, segment by
// segment: `/x` matches `/x` and `/x/...` but not `/xy`. A prefix that
// ends in a slash (such as `/` or `/x/`) is a plain string prefix.
func hasPathPrefix(reqPath, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(reqPath, prefix)
	}
	if !strings.HasPrefix(reqPath, prefix) {
		return false
	}
	return len(reqPath) == len(prefix) || reqPath[len(prefix)] == '/'
}
