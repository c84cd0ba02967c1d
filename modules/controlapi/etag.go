package controlapi

import (
	"net/http"
	"strconv"
	"strings"
)

// etag returns the entity tag of an upstream version: "<version>".
func etag(version uint64) string {
	return `"` + strconv.FormatUint(version, 10) + `"`
}

// precondition is the If-Match condition of a request.
type precondition struct {
	// present is set when the request has If-Match.
	present bool
	// any is If-Match: * (the upstream must exist).
	any bool
	// versions are the strong entity tags that are upstream versions;
	// other tags (weak, or not a number) can never match.
	versions []uint64
}

// matches reports whether an upstream at version passes the condition.
func (p precondition) matches(version uint64) bool {
	if !p.present || p.any {
		return true
	}
	for _, v := range p.versions {
		if v == version {
			return true
		}
	}
	return false
}

// parseIfMatch parses the If-Match headers of a request: "*" or a
// comma-separated list of entity tags ("12", W/"12"). Weak tags never
// match (If-Match uses the strong comparison).
func parseIfMatch(h http.Header) (precondition, error) {
	values := h.Values("If-Match")
	p := precondition{present: len(values) > 0}
	bad := func() (precondition, error) {
		return precondition{}, fieldError("If-Match", `If-Match must be * or a list of entity tags such as "12"`)
	}
	for _, v := range values {
		rest := strings.TrimSpace(v)
		if rest == "" {
			return bad()
		}
		for rest != "" {
			weak := false
			switch {
			case rest[0] == '*':
				p.any = true
				rest = rest[1:]
			default:
				if strings.HasPrefix(rest, "W/") {
					weak, rest = true, rest[2:]
				}
				if rest == "" || rest[0] != '"' {
					return bad()
				}
				end := strings.IndexByte(rest[1:], '"')
				if end < 0 {
					return bad()
				}
				tag := rest[1 : end+1]
				rest = rest[end+2:]
				if n, err := strconv.ParseUint(tag, 10, 64); err == nil && !weak && tag == strconv.FormatUint(n, 10) {
					p.versions = append(p.versions, n)
				}
			}
			rest = strings.TrimLeft(rest, " \t")
			if rest == "" {
				break
			}
			if rest[0] != ',' {
				return bad()
			}
			rest = strings.TrimLeft(rest[1:], " \t")
		}
	}
	return p, nil
}
