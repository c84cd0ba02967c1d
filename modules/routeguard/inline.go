package routeguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Loading the folded handlers. Caddy's ctx.LoadModule finds a handler's
// module name by decoding the handler's whole JSON into a map and
// encoding the map again without the name (caddy.getModuleNameInline):
// for a reverse_proxy with its upstreams, health checks and transport,
// that round trip was a third of a guard's provisioning, 10,000 routes
// spending 0.4 s in it (issue 13.8). The guard reads the name with a
// scan of the object's top-level members instead and cuts the member
// out, then loads the module by its ID as LoadModule does (provisioned
// and validated, its errors worded the same).

// loadHandlers provisions the folded handlers of raws, in order. With
// shared, a handler of a stateless module (shareable) whose JSON is that
// of one loaded before is that one. With proxies, a reverse_proxy is
// loaded as proxyLoaderID (proxy.go), sharing its transport and retry
// matchers with the config's other proxies.
func loadHandlers(ctx caddy.Context, raws []json.RawMessage, shared map[string]caddyhttp.MiddlewareHandler, proxies *proxyShares) ([]caddyhttp.MiddlewareHandler, error) {
	hs := make([]caddyhttp.MiddlewareHandler, 0, len(raws))
	for i, raw := range raws {
		if h, ok := shared[string(raw)]; ok {
			hs = append(hs, h)
			continue
		}
		name, rest, err := cutModuleName(raw, "handler")
		if err != nil {
			return nil, fmt.Errorf("position %d: %w", i, err)
		}
		var m any
		if name == proxyHandler && proxies != nil {
			m, err = ctx.WithValue(proxySharesKey{}, proxies).LoadModuleByID(proxyLoaderID, rest)
			if err != nil {
				// Caddy's messages name the module by its ID: the
				// handler's, as for a reverse_proxy Caddy loads.
				err = errors.New(strings.ReplaceAll(err.Error(), proxyLoaderID, "http.handlers."+proxyHandler))
			}
			if p, ok := m.(*proxy); ok {
				m = &p.Handler
			}
		} else {
			m, err = ctx.LoadModuleByID("http.handlers."+name, rest)
		}
		if err != nil {
			return nil, fmt.Errorf("position %d: loading module '%s': %w", i, name, err)
		}
		h, ok := m.(caddyhttp.MiddlewareHandler)
		if !ok {
			return nil, fmt.Errorf("position %d: module '%s' is not an HTTP handler", i, name)
		}
		if shared != nil && shareable[name] {
			shared[string(raw)] = h
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// shareable are the handlers one provisioned instance of which may serve
// every route of a config whose JSON has the same handler: they hold
// nothing per request or per route once provisioned (their settings, a
// logger, compiled header replacements) and need no cleanup. A filter
// applied to every route (the same headers, the same timeout) is then
// decoded and provisioned once per config instead of once per route.
var shareable = map[string]bool{
	"headers":          true,
	"sentinel_timeout": true,
	"log_append":       true,
}

// errNoModuleName is returned for an object without its module name.
var errNoModuleName = errors.New("module name not specified")

// cutModuleName returns the string value of the top-level member key of
// the JSON object raw, and raw without that member. Like Caddy's
// getModuleNameInline, it fails when raw is not an object or the name is
// missing, empty or not a string; its messages do not quote the object
// (it may hold secrets).
func cutModuleName(raw json.RawMessage, key string) (string, json.RawMessage, error) {
	if !json.Valid(raw) {
		var tmp map[string]any
		err := json.Unmarshal(raw, &tmp)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return "", nil, err
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		var tmp map[string]any
		return "", nil, json.Unmarshal(raw, &tmp) // not an object: the decoder's message
	}
	i++
	// The members other than key, as spans of raw.
	var spans [][2]int
	var name string
	found := false
	for {
		i = skipSpace(raw, i)
		if raw[i] == '}' {
			break
		}
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		start := i
		keyEnd := skipString(raw, i)
		k := raw[i:keyEnd]
		i = skipSpace(raw, keyEnd)
		i = skipSpace(raw, i+1) // ':'
		valStart := i
		i = skipValue(raw, i)
		if memberKeyIs(k, key) {
			var s string
			if err := json.Unmarshal(raw[valStart:i], &s); err != nil || s == "" {
				return "", nil, fmt.Errorf("%w with key '%s' (it must be a non-empty string)", errNoModuleName, key)
			}
			// The last member of a name wins, as in a map.
			name, found = s, true
			continue
		}
		spans = append(spans, [2]int{start, i})
	}
	if !found {
		return "", nil, fmt.Errorf("%w with key '%s'", errNoModuleName, key)
	}
	out := make([]byte, 0, len(raw))
	out = append(out, '{')
	for j, sp := range spans {
		if j > 0 {
			out = append(out, ',')
		}
		out = append(out, raw[sp[0]:sp[1]]...)
	}
	return name, append(out, '}'), nil
}

// memberKeyIs reports whether the JSON string k (quotes included) is key.
func memberKeyIs(k []byte, key string) bool {
	if len(k) == len(key)+2 && string(k[1:len(k)-1]) == key {
		return true
	}
	for _, c := range k {
		if c == '\\' { // escaped: decode it
			var s string
			return json.Unmarshal(k, &s) == nil && s == key
		}
	}
	return false
}

// The scanners below read valid JSON (cutModuleName checks it first).

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	// A number, true, false or null.
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
