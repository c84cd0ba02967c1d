package routematch

import (
	"net/http"
	"net/url"
)

// HeaderMatch is a condition on a request header field.
type HeaderMatch struct {
	// The header field name (case-insensitive). Required.
	Name string `json:"name"`

	// If set, one of the field's values must be exactly equal to this
	// value (case-sensitive; a field sent on several lines has several
	// values, but a comma-separated list on one line is a single value).
	// If omitted, the field only needs to be present.
	Value *string `json:"value,omitempty"`
}

// QueryMatch is a condition on a query string parameter.
type QueryMatch struct {
	// The query parameter name (case-sensitive). Required.
	Name string `json:"name"`

	// If set, one of the parameter's values must be exactly equal to
	// this value (after URL decoding). If omitted, the parameter only
	// needs to be present (`?flag` and `?flag=` count as present).
	Value *string `json:"value,omitempty"`
}

// match reports whether r satisfies the header condition.
func (h HeaderMatch) match(r *http.Request) bool {
	vals, present := headerValues(r, h.Name)
	if !present {
		return false
	}
	if h.Value == nil {
		return true
	}
	for _, v := range vals {
		if v == *h.Value {
			return true
		}
	}
	return false
}

// headerValues returns the values of the named request header field and
// whether it is present. The Host and Transfer-Encoding fields, which
// net/http moves out of the header map, are taken from the request.
func headerValues(r *http.Request, name string) ([]string, bool) {
	switch http.CanonicalHeaderKey(name) {
	case "Host":
		return []string{r.Host}, r.Host != ""
	case "Transfer-Encoding":
		return r.TransferEncoding, len(r.TransferEncoding) > 0
	}
	vals := r.Header.Values(name)
	return vals, len(vals) > 0
}

// match reports whether the parsed query satisfies the condition.
func (q QueryMatch) match(query url.Values) bool {
	vals, present := query[q.Name]
	if !present {
		return false
	}
	if q.Value == nil {
		return true
	}
	for _, v := range vals {
		if v == *q.Value {
			return true
		}
	}
	return false
}
