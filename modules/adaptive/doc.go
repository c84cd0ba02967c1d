// Package adaptive holds Sentinel's load balancing with feedback.
//
// The transport http.reverse_proxy.transport.sentinel is Caddy's http
// transport that also reports every proxied request's outcome — time to
// response headers, status, connection errors, Retry-After — and keeps
// the requests in flight per target address (released on every path).
// What it learns lives with the process's registry, which the `sentinel`
// app holds and the modules get from it in Provision (registry.From): the
// counters in the registry, the estimators in the feedback store attached
// to it (registry.Attached), keyed by address, so a config reload keeps
// it. The state a policy shares with the same policy of other configs
// (estimators, selection counters, the adaptive group) is counted by
// reference in the store's pool: a reload that keeps the policy's
// parameters keeps it, one that changes them drops it with the old
// config. The package holds no state of its own.
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
