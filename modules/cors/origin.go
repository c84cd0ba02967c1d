package cors

import (
	"fmt"
	"net/url"
	"strings"
)

// originMatcher decides which origins are allowed.
type originMatcher struct {
	// any is true if `*` is allowed.
	any bool
	// exact holds the lower-cased origins allowed exactly.
	exact map[string]struct{}
	// wildcards are the wildcard origins.
	wildcards []wildcardOrigin
}

// wildcardOrigin is a compiled `scheme://*.domain[:port]` origin.
type wildcardOrigin struct {
	// prefix is the lower-cased scheme with "://", such as "https://".
	prefix string
	// suffix is the lower-cased domain with its leading dot and port (if
	// any), such as ".example.com" or ".example.com:8443".
	suffix string
}

// compileOrigins validates and compiles the allowed_origins entries.
func compileOrigins(origins []string) (originMatcher, error) {
	m := originMatcher{exact: make(map[string]struct{}, len(origins))}
	for i, o := range origins {
		o = strings.ToLower(strings.TrimSpace(o))
		switch {
		case o == "*":
			m.any = true
		case o == "null":
			m.exact[o] = struct{}{}
		case strings.Contains(o, "*"):
			w, err := compileWildcardOrigin(o)
			if err != nil {
				return m, fmt.Errorf("allowed_origins %d (%q): %w", i, origins[i], err)
			}
			m.wildcards = append(m.wildcards, w)
		default:
			o = strings.TrimSuffix(o, "/")
			if err := checkOrigin(o); err != nil {
				return m, fmt.Errorf("allowed_origins %d (%q): %w", i, origins[i], err)
			}
			m.exact[o] = struct{}{}
		}
	}
	return m, nil
}

// compileWildcardOrigin compiles a lower-cased `scheme://*.domain[:port]`.
func compileWildcardOrigin(o string) (wildcardOrigin, error) {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || scheme == "" {
		return wildcardOrigin{}, fmt.Errorf("a wildcard origin must look like https://*.example.com")
	}
	suffix, ok := strings.CutPrefix(strings.TrimSuffix(rest, "/"), "*.")
	if !ok || suffix == "" || strings.Contains(suffix, "*") {
		return wildcardOrigin{}, fmt.Errorf("a wildcard origin must look like https://*.example.com (one leading '*.' label)")
	}
	if err := checkOrigin(scheme + "://x." + suffix); err != nil {
		return wildcardOrigin{}, err
	}
	return wildcardOrigin{prefix: scheme + "://", suffix: "." + suffix}, nil
}

// checkOrigin ensures o is a serialized origin: scheme://host[:port].
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("not an origin: %w", err)
	}
	if u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("not an origin: must be scheme://host[:port]")
	}
	return nil
}

// match reports whether origin is allowed, and whether only `*` allowed it.
func (m originMatcher) match(origin string) (allowed, viaAny bool) {
	o := strings.ToLower(origin)
	if _, ok := m.exact[o]; ok {
		return true, false
	}
	for _, w := range m.wildcards {
		if w.match(o) {
			return true, false
		}
	}
	if m.any && o != "null" {
		return true, true
	}
	return false, false
}

// match reports whether the lower-cased origin o matches w: same scheme,
// same domain suffix and port, and at least one label in front.
func (w wildcardOrigin) match(o string) bool {
	rest, ok := strings.CutPrefix(o, w.prefix)
	if !ok {
		return false
	}
	labels, ok := strings.CutSuffix(rest, w.suffix)
	if !ok || labels == "" || labels[0] == '.' || labels[len(labels)-1] == '.' {
		return false
	}
	for _, ch := range labels {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			return false
		}
	}
	return true
}
