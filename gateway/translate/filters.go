package translate

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ruleHandlers returns the Caddy handlers of one rule of route r on
// listener l (nil: only check the references): its filters, then the
// redirect or the reverse proxy to its backends. A reference that does
// not resolve makes the rule answer 500 (as the spec asks for invalid
// backends) and is returned as the ResolvedRefs reason.
func ruleHandlers(in *Input, r *gwv1.HTTPRoute, ri int, rule gwv1.HTTPRouteRule, l *listener) ([]any, *refError) {
	var handlers []any
	var firstErr *refError
	fail := func(e *refError) {
		if firstErr == nil {
			firstErr = e
		}
	}
	var redirect any
	var hostRewrite string
	var respOps map[string]any
	for fi, f := range rule.Filters {
		where := fmt.Sprintf("rules[%d].filters[%d]", ri, fi)
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			if f.RequestHeaderModifier != nil {
				handlers = append(handlers, map[string]any{"handler": "headers", "request": headerOps(f.RequestHeaderModifier)})
			}
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			if f.ResponseHeaderModifier != nil {
				respOps = headerOps(f.ResponseHeaderModifier)
				respOps["deferred"] = true
			}
		case gwv1.HTTPRouteFilterURLRewrite:
			if f.URLRewrite == nil {
				continue
			}
			if f.URLRewrite.Hostname != nil {
				hostRewrite = string(*f.URLRewrite.Hostname)
			}
			if f.URLRewrite.Path != nil {
				handlers = append(handlers, pathRewrite(f.URLRewrite.Path, rule.Matches))
			}
		case gwv1.HTTPRouteFilterRequestRedirect:
			if f.RequestRedirect == nil || l == nil {
				continue
			}
			if f.RequestRedirect.Path != nil {
				handlers = append(handlers, pathRewrite(f.RequestRedirect.Path, rule.Matches))
			}
			redirect = redirectHandler(f.RequestRedirect, l)
		case gwv1.HTTPRouteFilterRequestMirror:
			if f.RequestMirror == nil {
				continue
			}
			b, err := resolveBackend(in, r, f.RequestMirror.BackendRef, where+".requestMirror.backendRef")
			if err != nil {
				fail(err)
				continue
			}
			h := map[string]any{
				"handler":  "sentinel_shadow",
				"upstream": b.id,
				"route":    fmt.Sprintf("%s/%s/rules[%d]", r.Namespace, r.Name, ri),
				"proxy":    proxyHandler([]*backend{b}, ""),
			}
			if p := mirrorPercent(f.RequestMirror); p != nil {
				h["percentage"] = *p
			}
			handlers = append(handlers, h)
		case gwv1.HTTPRouteFilterExtensionRef:
			h, err := extensionHandler(in, r, ri, f.ExtensionRef, where)
			if err != nil {
				fail(err)
				continue
			}
			handlers = append(handlers, h)
		default:
			fail(&refError{gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s: filter type %s is not supported", where, f.Type)})
		}
	}
	reqTimeout, backendTimeout, terr := ruleTimeouts(rule.Timeouts, ri)
	if terr != nil {
		fail(terr)
	}
	retry, rerr := ruleRetry(rule.Retry, ri)
	if rerr != nil {
		fail(rerr)
	}
	// Response headers first, so that they apply to every answer below
	// (a timeout's 504 too); the request timeout covers the rest.
	if reqTimeout != nil {
		handlers = append([]any{reqTimeout}, handlers...)
	}
	if respOps != nil {
		handlers = append([]any{map[string]any{"handler": "headers", "response": respOps}}, handlers...)
	}
	if firstErr != nil {
		return append(handlers, status(500)), firstErr
	}
	if redirect != nil {
		return append(handlers, redirect), nil
	}
	var backends []*backend
	var total, invalid int32
	for bi, br := range rule.BackendRefs {
		where := fmt.Sprintf("rules[%d].backendRefs[%d]", ri, bi)
		b, err := resolveBackend(in, r, br.BackendObjectReference, where)
		if err != nil {
			fail(err)
			// The spec: the invalid backend's share of the requests
			// gets 500s.
			w := int32(1)
			if br.Weight != nil {
				w = *br.Weight
			}
			invalid += w
			continue
		}
		if br.Weight != nil {
			b.weight = *br.Weight
		}
		if bh, ferr := backendFilters(br, where); ferr != nil {
			fail(ferr)
			w := b.weight
			invalid += w
			continue
		} else {
			b.headers = bh
		}
		total += b.weight
		if b.weight > 0 && len(b.targets) > 0 {
			backends = append(backends, b)
		}
	}
	switch {
	case len(backends) == 0 && (firstErr != nil || len(rule.BackendRefs) == 0 || total == 0):
		// No backend, or none valid, or every weight 0: 500.
		return append(handlers, status(500)), firstErr
	case len(backends) == 0:
		// Valid Services without ready endpoints.
		return append(handlers, status(503)), firstErr
	}
	if invalid > 0 {
		// The internal server speaks h2c too: the h2c of the others holds.
		backends = append(backends, &backend{id: "invalid", targets: []string{invalidDial(in)}, weight: invalid, h2c: backends[0].h2c})
	}
	if backendTimeout != nil {
		handlers = append(handlers, backendTimeout)
	}
	proxy := proxyHandler(backends, hostRewrite)
	if mh, req, resp := backendHeaderHandlers(backends, ri); mh != nil {
		handlers = append(handlers, mh)
		hdrs, _ := proxy["headers"].(map[string]any)
		if hdrs == nil {
			hdrs = map[string]any{}
			proxy["headers"] = hdrs
		}
		if req != nil {
			if cur, ok := hdrs["request"].(map[string]any); ok {
				// The host rewrite's Host.
				for k, v := range cur["set"].(map[string][]string) {
					if req["set"] == nil {
						req["set"] = map[string][]string{}
					}
					req["set"].(map[string][]string)[k] = v
				}
			}
			hdrs["request"] = req
		}
		if resp != nil {
			hdrs["response"] = resp
		}
	}
	if retry != nil {
		lb, _ := proxy["load_balancing"].(map[string]any)
		if lb == nil {
			lb = map[string]any{}
			proxy["load_balancing"] = lb
		}
		for k, v := range retry {
			lb[k] = v
		}
	}
	return append(handlers, proxy), firstErr
}

func refKind(r *gwv1.LocalObjectReference) string {
	if r == nil {
		return ""
	}
	return string(r.Group) + "/" + string(r.Kind)
}

func nameOf(r *gwv1.LocalObjectReference) string {
	if r == nil {
		return ""
	}
	return string(r.Name)
}

// status is a handler answering code with an empty body.
func status(code int) map[string]any {
	return map[string]any{"handler": "static_response", "status_code": code}
}

// headerOps is a Caddy header operations object.
func headerOps(f *gwv1.HTTPHeaderFilter) map[string]any {
	ops := map[string]any{}
	if len(f.Set) > 0 {
		set := map[string][]string{}
		for _, h := range f.Set {
			set[string(h.Name)] = []string{h.Value}
		}
		ops["set"] = set
	}
	if len(f.Add) > 0 {
		add := map[string][]string{}
		for _, h := range f.Add {
			add[string(h.Name)] = append(add[string(h.Name)], h.Value)
		}
		ops["add"] = add
	}
	if len(f.Remove) > 0 {
		ops["delete"] = f.Remove
	}
	return ops
}

// mirrorPercent is the share of requests mirrored (nil: all).
func mirrorPercent(m *gwv1.HTTPRequestMirrorFilter) *float64 {
	switch {
	case m.Percent != nil:
		return ptr(float64(*m.Percent))
	case m.Fraction != nil:
		d := int32(100)
		if m.Fraction.Denominator != nil {
			d = *m.Fraction.Denominator
		}
		if d <= 0 {
			return ptr(0.0)
		}
		return ptr(100 * float64(m.Fraction.Numerator) / float64(d))
	}
	return nil
}

// maxSequence is the longest upstream sequence proxyHandler interleaves.
const maxSequence = 1000

// proxyHandler is a reverse proxy to the backends' targets, each
// backend's weight spread over its targets. With weights, the targets
// are listed in a smooth weighted round-robin sequence (a target of
// weight 3 and one of weight 1 give a a b a, not a a a b) and picked
// round robin, so that any window of requests is split as the weights
// say; a sequence longer than maxSequence falls back to Caddy's
// weighted_round_robin (blocks of consecutive requests per target).
func proxyHandler(backends []*backend, host string) map[string]any {
	l := 1
	for _, b := range backends {
		l = lcm(l, len(b.targets))
	}
	var targets []string
	var weights []int
	g, sum := 0, 0
	for _, b := range backends {
		for _, t := range b.targets {
			w := int(b.weight) * l / len(b.targets)
			targets = append(targets, t)
			weights = append(weights, w)
			g = gcd(g, w)
		}
	}
	for i := range weights {
		weights[i] /= g
		sum += weights[i]
	}
	// WebSockets and other upgraded connections outlive a config change
	// (every route change is one) by streamCloseDelay instead of being
	// closed with the replaced config.
	h := map[string]any{"handler": "reverse_proxy", "stream_close_delay": streamCloseDelay}
	var ups []map[string]any
	switch {
	case len(backends) == 1:
		for _, t := range targets {
			ups = append(ups, map[string]any{"dial": t})
		}
	case sum <= maxSequence:
		for _, i := range smoothSequence(weights, sum) {
			ups = append(ups, map[string]any{"dial": targets[i]})
		}
		h["load_balancing"] = map[string]any{"selection_policy": map[string]any{"policy": "round_robin"}}
	default:
		for _, t := range targets {
			ups = append(ups, map[string]any{"dial": t})
		}
		h["load_balancing"] = map[string]any{"selection_policy": map[string]any{"policy": "weighted_round_robin", "weights": weights}}
	}
	h["upstreams"] = ups
	if h2c := len(backends) > 0; h2c {
		for _, b := range backends {
			h2c = h2c && b.h2c
		}
		if h2c {
			h["transport"] = map[string]any{"protocol": "http", "versions": []string{"h2c", "2"}}
		}
	}
	if host != "" {
		h["headers"] = map[string]any{"request": map[string]any{"set": map[string][]string{"Host": {host}}}}
	}
	return h
}

// streamCloseDelay is how long the upgraded connections (WebSockets) of
// a replaced config keep relaying: Caddy's reverse proxy closes them with
// their config otherwise, and a Gateway's config is replaced on every
// route change.
const streamCloseDelay = "30s"

// smoothSequence is nginx's smooth weighted round robin over weights:
// sum picks, each index as often as its weight, spread out.
func smoothSequence(weights []int, sum int) []int {
	cur := make([]int, len(weights))
	out := make([]int, 0, sum)
	for range sum {
		best := -1
		for i, w := range weights {
			cur[i] += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out = append(out, best)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcm(a, b int) int { return a / gcd(a, b) * b }

// pathRewrite is a rewrite handler applying a path modifier; a prefix
// replacement replaces the rule's matched path prefix.
func pathRewrite(m *gwv1.HTTPPathModifier, matches []gwv1.HTTPRouteMatch) map[string]any {
	esc := func(s string) string { return strings.ReplaceAll(s, "$", "$$") }
	switch m.Type {
	case gwv1.FullPathHTTPPathModifier:
		v := "/"
		if m.ReplaceFullPath != nil {
			v = *m.ReplaceFullPath
		}
		return map[string]any{"handler": "rewrite", "path_regexp": []map[string]string{{"find": "^.*$", "replace": esc(v)}}}
	default: // PrefixMatchHTTPPathModifier
		v := ""
		if m.ReplacePrefixMatch != nil {
			v = strings.TrimSuffix(*m.ReplacePrefixMatch, "/")
		}
		var prefixes []string
		for _, mt := range matches {
			if mt.Path != nil && mt.Path.Value != nil {
				prefixes = append(prefixes, strings.TrimSuffix(*mt.Path.Value, "/"))
			}
		}
		if len(prefixes) == 0 {
			prefixes = []string{""}
		}
		sort.Slice(prefixes, func(i, j int) bool { return len(prefixes[i]) > len(prefixes[j]) })
		alts := make([]string, len(prefixes))
		for i, p := range prefixes {
			alts[i] = regexp.QuoteMeta(p)
		}
		return map[string]any{"handler": "rewrite", "path_regexp": []map[string]string{
			{"find": "^(?:" + strings.Join(alts, "|") + ")(/.*)?$", "replace": esc(v) + "$1"},
			{"find": "^$", "replace": "/"},
		}}
	}
}

// redirectHandler answers a redirect to the filter's scheme, host, port
// and the (rewritten) request URI.
func redirectHandler(f *gwv1.HTTPRequestRedirectFilter, l *listener) map[string]any {
	scheme := "http"
	if l.spec.Protocol == gwv1.HTTPSProtocolType {
		scheme = "https"
	}
	port := int(l.spec.Port)
	if f.Scheme != nil {
		scheme = *f.Scheme
		port = defaultPort(scheme)
	}
	if f.Port != nil {
		port = int(*f.Port)
	}
	host := "{http.request.host}"
	if f.Hostname != nil {
		host = string(*f.Hostname)
	}
	loc := scheme + "://" + host
	if port != defaultPort(scheme) {
		loc += ":" + strconv.Itoa(port)
	}
	loc += "{http.request.uri}"
	code := 302
	if f.StatusCode != nil {
		code = *f.StatusCode
	}
	return map[string]any{"handler": "static_response", "status_code": code, "headers": map[string][]string{"Location": {loc}}}
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}
