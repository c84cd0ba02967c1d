package adaptive

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/cespare/xxhash/v2"
)

// The request keys of the hashing policies.
const (
	keyClientIP = "client_ip"
	keyHeader   = "header"
	keyCookie   = "cookie"
	keyPath     = "path"
)

// The hash functions of the hashing policies.
const (
	hashXXHash = "xxhash"
	hashFNV    = "fnv"
)

// requestKey extracts the hashing key of a request.
type requestKey struct {
	// Source is client_ip, header, cookie or path.
	source string
	// name is the canonical header name or the cookie name.
	name string
}

func newRequestKey(source, name string) (requestKey, error) {
	if source == "" {
		source = keyClientIP
	}
	switch source {
	case keyClientIP, keyPath:
		if name != "" {
			return requestKey{}, fmt.Errorf("key %s takes no key_name", source)
		}
	case keyHeader:
		if name == "" {
			return requestKey{}, fmt.Errorf("key header needs key_name (the header)")
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
	case keyCookie:
		if name == "" {
			return requestKey{}, fmt.Errorf("key cookie needs key_name (the cookie)")
		}
	default:
		return requestKey{}, fmt.Errorf("key %q: expected client_ip, header, cookie or path", source)
	}
	return requestKey{source, name}, nil
}

// of returns the key of r, and false when the request has none. It
// allocates nothing.
func (k requestKey) of(r *http.Request) (string, bool) {
	if r == nil {
		return "", false
	}
	switch k.source {
	case keyHeader:
		if v := r.Header[k.name]; len(v) > 0 && v[0] != "" {
			return v[0], true
		}
		return "", false
	case keyCookie:
		return cookieValue(r.Header["Cookie"], k.name)
	case keyPath:
		return r.URL.Path, true
	}
	addr, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if addr == "" {
		addr = r.RemoteAddr
	}
	if addr == "" {
		return "", false
	}
	return stripPort(addr), true
}

// stripPort removes the port of host:port or [v6]:port; an address
// without one is returned as is.
func stripPort(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if end := strings.IndexByte(addr, ']'); end > 0 {
			return addr[1:end]
		}
		return addr
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && strings.IndexByte(addr, ':') == i {
		return addr[:i]
	}
	return addr // bare IPv6 or no port
}

// cookieValue finds a cookie in Cookie header lines without parsing them
// all.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, val, ok := strings.Cut(part, "=")
			if ok && n == name {
				val = strings.Trim(val, `"`)
				return val, val != ""
			}
		}
	}
	return "", false
}

// hasher is a 64-bit string hash.
type hasher func(string) uint64

func newHasher(name string) (hasher, error) {
	switch name {
	case "", hashXXHash:
		return xxhash.Sum64String, nil
	case hashFNV:
		return fnv1a, nil
	}
	return nil, fmt.Errorf("hash %q: expected xxhash or fnv", name)
}

// fnv1a is the 64-bit FNV-1a hash.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
