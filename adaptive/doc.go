// Package adaptive holds Sentinel's load-balancing feedback loop: the
// transport http.reverse_proxy.transport.sentinel, which is Caddy's http
// transport plus per-target counters (in flight, requests, failures) kept
// in the process registry, and the selection policies that read them and
// the registry's weights.
package adaptive
