package translate

import (
	"fmt"
	"net/http"
	"strconv"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// unsetHeader is the header name a backend-level header slot takes for a
// backend without that slot: set, then deleted (Caddy deletes after it
// sets), so it never reaches the backend or the client.
const unsetHeader = "X-Sentinel-Gateway-Unset"

// backendHeaders are a backend's own header filters (HTTPBackendRef
// filters): request and response set, add and remove.
type backendHeaders struct {
	req, resp *gwv1.HTTPHeaderFilter
}

// backendFilters reads the filters of backendRef br: RequestHeaderModifier
// and ResponseHeaderModifier; another type is UnsupportedValue.
func backendFilters(br gwv1.HTTPBackendRef, where string) (*backendHeaders, *refError) {
	if len(br.Filters) == 0 {
		return nil, nil
	}
	h := &backendHeaders{}
	for fi, f := range br.Filters {
		switch {
		case f.Type == gwv1.HTTPRouteFilterRequestHeaderModifier && f.RequestHeaderModifier != nil:
			h.req = f.RequestHeaderModifier
		case f.Type == gwv1.HTTPRouteFilterResponseHeaderModifier && f.ResponseHeaderModifier != nil:
			h.resp = f.ResponseHeaderModifier
		default:
			return nil, &refError{gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.filters[%d]: backend filter type %s is not supported (RequestHeaderModifier and ResponseHeaderModifier are)", where, fi, f.Type)}
		}
	}
	return h, nil
}

// backendHeaderHandlers gives the reverse proxy per-backend header
// operations: a map handler (Caddy's, evaluated lazily) from the
// upstream the proxy picked ({http.reverse_proxy.upstream.hostport}, set
// per attempt) to header names and values, and the proxy's header
// operations made of those placeholders: slot i of "set" is
// {gw.rq.set.i.n}: {gw.rq.set.i.v}, and so on. A backend without slot i
// sets unsetHeader, which is deleted last. It returns the map handler
// (nil: no backend has filters) and the request and response operations.
func backendHeaderHandlers(backends []*backend, ri int) (mapHandler map[string]any, req, resp map[string]any) {
	some := false
	for _, b := range backends {
		some = some || b.headers != nil
	}
	if !some {
		return nil, nil, nil
	}
	var dests, defaults []string
	outputs := make([][]string, len(backends))
	// slots adds the slots of one list of headers (kind: rq.set, …);
	// get returns a backend's list; named: the list has values.
	slot := func(kind string, get func(*backendHeaders) []gwv1.HTTPHeader, names func(*backendHeaders) []string) (set map[string][]string, del []string) {
		n := 0
		for _, b := range backends {
			if b.headers != nil {
				if get != nil {
					n = max(n, len(get(b.headers)))
				} else {
					n = max(n, len(names(b.headers)))
				}
			}
		}
		for i := range n {
			name := "gw.r" + strconv.Itoa(ri) + "." + kind + "." + strconv.Itoa(i)
			dests = append(dests, "{"+name+".n}")
			defaults = append(defaults, unsetHeader)
			if get != nil {
				dests = append(dests, "{"+name+".v}")
				defaults = append(defaults, "")
			}
			for bi, b := range backends {
				var hn, hv string = unsetHeader, ""
				if b.headers != nil {
					if get != nil {
						if l := get(b.headers); i < len(l) {
							hn, hv = string(l[i].Name), l[i].Value
						}
					} else if l := names(b.headers); i < len(l) {
						hn = l[i]
					}
				}
				outputs[bi] = append(outputs[bi], hn)
				if get != nil {
					outputs[bi] = append(outputs[bi], hv)
				}
			}
			if get != nil {
				if set == nil {
					set = map[string][]string{}
				}
				set["{"+name+".n}"] = []string{"{" + name + ".v}"}
			} else {
				del = append(del, "{"+name+".n}")
			}
		}
		return set, del
	}
	ops := func(prefix string, f func(*backendHeaders) *gwv1.HTTPHeaderFilter) map[string]any {
		lists := func(sel func(*gwv1.HTTPHeaderFilter) []gwv1.HTTPHeader) func(*backendHeaders) []gwv1.HTTPHeader {
			return func(h *backendHeaders) []gwv1.HTTPHeader {
				if x := f(h); x != nil {
					return sel(x)
				}
				return nil
			}
		}
		set, _ := slot(prefix+"set", lists(func(x *gwv1.HTTPHeaderFilter) []gwv1.HTTPHeader { return x.Set }), nil)
		add, _ := slot(prefix+"add", lists(func(x *gwv1.HTTPHeaderFilter) []gwv1.HTTPHeader { return joinAdds(x.Add) }), nil)
		_, del := slot(prefix+"del", nil, func(h *backendHeaders) []string {
			if x := f(h); x != nil {
				return x.Remove
			}
			return nil
		})
		if set == nil && add == nil && del == nil {
			return nil
		}
		o := map[string]any{"delete": append(del, unsetHeader)}
		if set != nil {
			o["set"] = set
		}
		if add != nil {
			o["add"] = add
		}
		return o
	}
	req = ops("rq.", func(h *backendHeaders) *gwv1.HTTPHeaderFilter { return h.req })
	resp = ops("rs.", func(h *backendHeaders) *gwv1.HTTPHeaderFilter { return h.resp })
	var mappings []any
	seen := map[string]bool{}
	for bi, b := range backends {
		for _, t := range b.targets {
			if seen[t] {
				continue // an endpoint of two backends: the first one's filters
			}
			seen[t] = true
			mappings = append(mappings, map[string]any{"input": t, "outputs": outputs[bi]})
		}
	}
	mapHandler = map[string]any{"handler": "map", "source": "{http.reverse_proxy.upstream.hostport}",
		"destinations": dests, "defaults": defaults, "mappings": mappings}
	return mapHandler, req, resp
}

// joinAdds groups a filter's add entries by header name (first
// appearance order), their values joined by ", " (one field line,
// equivalent for list-based fields): slots are applied in no set order,
// values of one name keep theirs.
func joinAdds(adds []gwv1.HTTPHeader) []gwv1.HTTPHeader {
	var out []gwv1.HTTPHeader
	idx := map[string]int{}
	for _, a := range adds {
		k := http.CanonicalHeaderKey(string(a.Name))
		if i, ok := idx[k]; ok {
			out[i].Value += ", " + a.Value
			continue
		}
		idx[k] = len(out)
		out = append(out, a)
	}
	return out
}
