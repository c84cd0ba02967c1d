package kdladapter

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
)

// mergeServers makes listeners whose servers are identical but for their
// address one Caddy server listening on all their addresses. Caddy
// provisions every route's handler chain once per server: a config of
// 10,000 routes on two plain listeners provisions 20,000 chains, and its
// JSON holds every route twice. The merged server is named after the
// first listener of the group in configuration order (order); Caddy's
// own metrics and logs name that server for requests on any of its
// addresses, Sentinel's route metrics are unchanged.
//
// Servers merge only when everything but "listen" is equal (TLS
// connection policies, protocols, timeouts, trusted proxies, listener
// wrappers, logs, routes, error routes): then the merged server answers
// each request exactly as the listener's own server would. Listeners
// with TLS never merge (their connection policies are tagged with the
// listener's id). A server with several addresses already, or none, is
// left alone.
func mergeServers(servers obj, order []string) {
	var heads []string
	for _, id := range order {
		srv, ok := servers[id].(obj)
		if !ok || !mergeable(srv) {
			continue
		}
		merged := false
		for _, h := range heads {
			head := servers[h].(obj)
			if sameServer(head, srv) {
				head["listen"] = append(head["listen"].([]string), srv["listen"].([]string)...)
				delete(servers, id)
				merged = true
				break
			}
		}
		if !merged {
			heads = append(heads, id)
		}
	}
}

// mergeable reports whether srv may take part in a merge: one address,
// no TLS.
func mergeable(srv obj) bool {
	listen, ok := srv["listen"].([]string)
	if !ok || len(listen) != 1 {
		return false
	}
	_, tls := srv["tls_connection_policies"]
	return !tls
}

// sameServer reports whether two servers are equal but for "listen".
func sameServer(x, y obj) bool {
	if len(x) != len(y) {
		return false
	}
	for k, xv := range x {
		yv, ok := y[k]
		if !ok {
			return false
		}
		if k == "listen" {
			continue
		}
		if !sameJSON(xv, yv) {
			return false
		}
	}
	return true
}

// sameJSON reports whether two values of the adapter's output types
// encode to the same JSON. Types it does not know compare unequal: a
// merge is only ever skipped, never wrong.
func sameJSON(x, y any) bool {
	switch a := x.(type) {
	case obj:
		b, ok := y.(obj)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !sameJSON(av, bv) {
				return false
			}
		}
		return true
	case []obj:
		b, ok := y.([]obj)
		return ok && slices.EqualFunc(a, b, func(p, q obj) bool { return sameJSON(p, q) })
	case []any:
		b, ok := y.([]any)
		return ok && slices.EqualFunc(a, b, sameJSON)
	case routeJSON:
		b, ok := y.(routeJSON)
		return ok && a == b
	case []string:
		b, ok := y.([]string)
		return ok && slices.Equal(a, b)
	case []int64:
		b, ok := y.([]int64)
		return ok && slices.Equal(a, b)
	case []int:
		b, ok := y.([]int)
		return ok && slices.Equal(a, b)
	case map[string]string:
		b, ok := y.(map[string]string)
		return ok && maps.Equal(a, b)
	case map[string][]string:
		b, ok := y.(map[string][]string)
		return ok && maps.EqualFunc(a, b, slices.Equal)
	case []json.RawMessage:
		b, ok := y.([]json.RawMessage)
		return ok && slices.EqualFunc(a, b, func(p, q json.RawMessage) bool { return bytes.Equal(p, q) })
	case json.RawMessage:
		b, ok := y.(json.RawMessage)
		return ok && bytes.Equal(a, b)
	case string, bool, int, int64, float64:
		return x == y
	case nil:
		return y == nil
	}
	return false
}
