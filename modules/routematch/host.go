package routematch

import (
	"net"
	"net/http"
	"regexp"
	"strings"
)

// hostKind is how a host pattern is compared to the request host.
type hostKind int

const (
	// hostExact compares the pattern and the host for equality.
	hostExact hostKind = iota
	// hostWildcard matches hosts ending in the pattern's suffix, with at
	// least one label in front of it.
	hostWildcard
	// hostRegexp matches hosts against an anchored regular expression.
	hostRegexp
)

// hostPattern is a compiled entry of MatchRoute.Host.
type hostPattern struct {
	kind hostKind
	// value is the normalized host (hostExact) or the suffix including
	// its leading dot, such as ".example.com" (hostWildcard).
	value string
	re    *regexp.Regexp
}

// compileHostPattern compiles one configured host pattern:
//
//   - `*.example.com` (only a leading `*.` and no other `*` or `[`) is a
//     wildcard requiring at least one label before `.example.com`;
//   - a bracketed IPv6 address such as `[::1]` is an exact host;
//   - any other pattern containing `*` or `[` is a case-insensitive
//     regular expression anchored to the whole host, or an exact host if it
//     does not compile;
//   - anything else is an exact host.
//
// Exact hosts and wildcard suffixes are normalized like request hosts
// (lower-cased, trailing dot removed). If the pattern was meant to be a
// regular expression but does not compile, the compilation error is
// returned along with the exact-host fallback.
func compileHostPattern(pattern string) (hostPattern, error) {
	p := strings.TrimSpace(pattern)
	if rest, ok := strings.CutPrefix(p, "*."); ok && rest != "" && !strings.ContainsAny(rest, "*[") {
		return hostPattern{kind: hostWildcard, value: "." + normalizeHost(rest)}, nil
	}
	if inner, ok := bracketedIP(p); ok {
		return hostPattern{kind: hostExact, value: normalizeHost(inner)}, nil
	}
	var reErr error
	if strings.ContainsAny(p, "*[") {
		re, err := regexp.Compile(`(?i)^(?:` + p + `)$`)
		if err == nil {
			return hostPattern{kind: hostRegexp, re: re}, nil
		}
		reErr = err
	}
	return hostPattern{kind: hostExact, value: normalizeHost(p)}, reErr
}

// match reports whether host, normalized by requestHost, matches p.
func (p hostPattern) match(host string) bool {
	switch p.kind {
	case hostWildcard:
		return len(host) > len(p.value) && strings.HasSuffix(host, p.value)
	case hostRegexp:
		return p.re.MatchString(host)
	default:
		return host == p.value
	}
}

// bracketedIP returns the address inside s if s is a bracketed IP address
// literal such as `[::1]`.
func bracketedIP(s string) (string, bool) {
	inner, ok := strings.CutPrefix(s, "[")
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, "]")
	if !ok || net.ParseIP(inner) == nil {
		return "", false
	}
	return inner, true
}

// requestHost returns the host the request is addressed to, without its
// port (`[::1]:8080` gives `::1`), lower-cased, with any trailing dot
// removed.
func requestHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		// no port
		host = r.Host
		if inner, ok := strings.CutPrefix(host, "["); ok {
			host = strings.TrimSuffix(inner, "]")
		}
	}
	return normalizeHost(host)
}

// normalizeHost lower-cases host and removes a trailing dot.
func normalizeHost(host string) string {
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
