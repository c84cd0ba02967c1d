// Package adaptive holds Sentinel's load balancing with feedback.
//
// The transport http.reverse_proxy.transport.sentinel is Caddy's http
// transport that also reports every proxied request's outcome — time to
// response headers, status, connection errors, Retry-After — and keeps
// the requests in flight per target address (released on every path).
// What it learns lives in process-level stores keyed by address
// (registry.Default for the counters, Feedback for the estimators), so a
// config reload keeps it.
//
// The selection policies (http.reverse_proxy.selection_policies.*) read
// that feedback and, where weights matter, the live weights of a registry
// upstream (field `upstream`):
//
//   - sentinel_weighted: smooth weighted round robin;
//   - adaptive: the original's weight-adjusting algorithm (errors and
//     latency lower a target's weight, health brings it back);
//   - peak_ewma: Finagle/Linkerd peak EWMA with power of two choices and
//     Linkerd's failure penalty;
//   - p2c: power of two choices on requests in flight, latency or both;
//   - weighted_least_connections: fewest in flight per unit of weight;
//   - consistent_hash: a hash ring with bounded load;
//   - maglev: Maglev hashing;
//   - locality_aware: the local zone first;
//   - deterministic_subset: a stable subset per proxy;
//   - least_tokens_queued: refused (needs the inference gateway).
//
// Each policy exports Prometheus metrics per upstream and target
// (sentinel_lb_*), read when scraped. docs/load-balancing.md describes
// them and compares them on real backends.
package adaptive
