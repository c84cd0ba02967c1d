package kdladapter

import (
	"sort"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// Status says what the adapter does with a setting of the original
// Sentinel's schema.
type Status int

// The statuses of a setting.
const (
	// Honoured settings are mapped onto Caddy (or onto a Sentinel module).
	Honoured Status = iota
	// Warned settings are accepted; adapting warns that they have no effect.
	Warned
	// NotYet settings belong to a module that is not built yet; adapting a
	// config that uses them fails with "not supported yet: <feature>".
	NotYet
)

// String is the status as the compatibility table shows it.
func (s Status) String() string {
	switch s {
	case Honoured:
		return "honoured"
	case Warned:
		return "warning"
	default:
		return "not yet"
	}
}

// Key is one node name of the schema: a setting or a block.
type Key struct {
	// Name is the node name.
	Name string
	// Status is what the adapter does with it.
	Status Status
	// Note says how it is mapped (Honoured), why it has no effect
	// (Warned), or names the missing feature (NotYet).
	Note string
	// Children are the keys allowed inside the block; nil for a setting.
	Children []*Key
	// Open marks a block whose children are free-form (header maps,
	// agent configs): they are not checked against the schema.
	Open bool
	// Since marks keys that are extensions of Sentinel on Caddy, not in
	// the original schema.
	Extension bool
	// Map, when set, maps a block of this key onto its module's typed
	// value; typedBlock declares it together with Children, so that the
	// keys the walker accepts are the keys the mapper reads (see
	// typed.go). nil: the block is read by its parent's mapper.
	Map func(a *adapter, n *kdl.Node) any
}

func h(name, note string, children ...*Key) *Key {
	return &Key{Name: name, Status: Honoured, Note: note, Children: children}
}

func w(name, note string) *Key { return &Key{Name: name, Status: Warned, Note: note} }

func ny(name, feature string) *Key { return &Key{Name: name, Status: NotYet, Note: feature} }

func open(k *Key) *Key { k.Open = true; return k }

func ext(k *Key) *Key { k.Extension = true; return k }

func deprecated(k *Key, note string) *Key { k.Note = note; return k }

// child returns the child key named name, or nil.
func (k *Key) child(name string) *Key {
	for _, c := range k.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// names lists the child key names, sorted, for suggestions.
func (k *Key) names() []string {
	out := make([]string, 0, len(k.Children))
	for _, c := range k.Children {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

func headerOps() []*Key {
	return []*Key{
		open(h("set", "Caddy `headers` handler, `set` (replaces)")),
		open(h("add", "Caddy `headers` handler, `add` (appends)")),
		h("remove", "Caddy `headers` handler, `delete`"),
		open(h("rename", "`header_rename` handler (moves all values)")),
	}
}

func circuitBreaker() *Key {
	return h("circuit-breaker", "Caddy passive health checks of the upstream's targets",
		h("failure-threshold", "`passive.max_fails`"),
		w("success-threshold", "a target comes back when its failures age out of `timeout-seconds`; a success count is not used"),
		h("timeout-seconds", "`passive.fail_duration`"),
		w("half-open-max-requests", "no half-open probing: the target is retried after `timeout-seconds`"),
	)
}

func acmeBlock() *Key {
	return h("acme", "Caddy TLS automation policy with the ACME issuer",
		h("email", "ACME account email"),
		h("domains", "subjects managed and served"),
		h("server-url", "ACME directory (`ca`)"),
		h("staging", "Let's Encrypt staging directory"),
		h("eab", "External Account Binding", h("kid", "key id"), h("hmac-key", "MAC key")),
		h("storage", "Caddy `storage` (file system root), global"),
		h("renew-before-days", "`renewal_window_ratio` of a 90-day certificate"),
		h("challenge-type", "`http-01` and `tls-alpn-01` (Caddy answers both); `dns-01` is not yet"),
		h("key-type", "`key_type` p256 / p384"),
		ny("dns-provider", "dns-01 challenges (DNS provider modules)"),
	)
}

func tlsListener() *Key {
	return h("tls", "TLS connection policy of the listener's server",
		h("cert-file", "`certificates.load_files`, selected by tag"),
		h("key-file", "`certificates.load_files`"),
		acmeBlock(),
		ext(h("internal", "certificates from Caddy's local CA, for local testing: `internal #true` or `internal { domains … }`",
			h("domains", "names to issue for (default: localhost, 127.0.0.1, ::1)"))),
		h("ca-file", "client CA (`client_authentication.trusted_ca_certs_pem_files`)"),
		h("client-auth", "`client_authentication.mode` require_and_verify"),
		h("min-version", "`protocol_min`"),
		h("max-version", "`protocol_max`"),
		h("cipher-suite", "`cipher_suites` (repeatable)"),
		open(h("cipher-suites", "legacy list form `cipher-suites { - \"NAME\" }`, accepted like repeated `cipher-suite`")),
		w("ocsp-stapling", "Caddy always staples OCSP when the certificate has a responder; `#false` cannot be honoured"),
		w("session-resumption", "TLS session resumption is on in Caddy; `#false` cannot be honoured per listener"),
		h("sni", "an extra certificate and a connection policy matched by SNI",
			h("hostnames", "`match.sni`"),
			h("priority-hostnames", "`match.sni`"),
			h("cert-file", "`certificates.load_files`"),
			h("key-file", "`certificates.load_files`"),
			acmeBlock(),
		),
		h("sni-certs", "`certificates.load_folders`",
			h("cert-folder", "folder of PEM certificate+key files"),
			w("reload-mode", "certificates in the folder are read at every config load (use a reload to pick up new files)"),
			w("reload-interval", "see reload-mode"),
		),
		w("allow-sni-overlaps", "Caddy picks the most specific certificate; overlaps are allowed"),
	)
}

func matchKeys() *Key {
	return h("matches", "`sentinel` matcher (original semantics: non-host conditions AND, hosts OR)",
		h("path", "exact path; several `path`/`path-prefix` are alternatives"),
		h("path-prefix", "segment-aware prefix"),
		h("path-regex", "regular expression search (RE2 syntax)"),
		h("host", "exact, `*.wildcard` or regex; case-insensitive, port stripped"),
		h("header", "present, or equal to a value"),
		h("method", "any of the listed methods (the original read only the first)"),
		h("query-param", "present, or equal to a value"),
	)
}

func retryPolicy() *Key {
	return h("retry-policy", "reverse_proxy `load_balancing` retries",
		h("max-attempts", "`retries` = max-attempts − 1"),
		h("retryable-status-codes", "`retry_match` expression on `{rp.status_code}`"),
		h("backoff", "`try_interval`"),
		w("max-backoff", "Caddy waits a constant `try_interval` between attempts"),
		h("per-attempt-timeout", "transport `response_header_timeout`"),
		h("retry-non-idempotent", "`retry_match` on every method"),
		h("timeout-ms", "legacy spelling of per-attempt-timeout"),
		h("backoff-base-ms", "legacy spelling of backoff"),
		w("backoff-max-ms", "legacy spelling of max-backoff (constant interval in Caddy)"),
	)
}

func staticFiles() *Key {
	return h("static-files", "Caddy `file_server`",
		h("root", "`root`"),
		h("index", "`index_names`"),
		h("directory-listing", "`browse`"),
		h("cache-control", "`Cache-Control` response header"),
		h("compress", "`encode` gzip + zstd (brotli on the fly is not in Caddy)"),
		h("fallback", "SPA fallback file (`try_files`)"),
		h("spa-fallback", "`#true` = fallback to the index file"),
	)
}

func policiesBlock() *Key {
	return h("policies", "per-route policies",
		h("request-headers", "Caddy `headers` handler on the request", headerOps()...),
		h("response-headers", "Caddy `headers` handler on the response", headerOps()...),
		h("timeout-secs", "`sentinel_timeout` handler: 504 when exceeded"),
		h("max-body-size", "`request_body.max_size`: 413 above it"),
		h("failure-mode", "checked (`open`/`closed`); agent failures follow each agent's or filter's `failure-mode` (503/504/413, see docs/agents.md), not the original's 500 for body-phase errors"),
		ny("rate-limit", "rate limiting"),
		ny("cache", "response caching"),
		w("buffer-requests", "not a Sentinel setting; requests stream unless a filter needs the body"),
		w("buffer-responses", "not a Sentinel setting; responses stream"),
	)
}

func routeKeys() *Key {
	return h("route", "a Caddy route in every listener's server, ordered by priority and specificity",
		matchKeys(),
		h("priority", "route order (`low` 10, `normal` 50, `high` 100, `critical` 1000, or an integer)"),
		h("upstream", "reverse_proxy to the upstream"),
		staticFiles(),
		ny("api-schema", "API schema validation"),
		ny("inference", "inference routing"),
		h("filters", "the route's handler chain, in order"),
		h("builtin-handler", "`status`, `health`, `not-found`, `upstreams`, `config` (registry views), `ready` (*extension*: 503 until the config has fully started): `sentinel_builtin`; `metrics`: Caddy `metrics`; `cache-*`: not yet"),
		ny("cache", "response caching"),
		ny("shadow", "traffic mirroring"),
		h("waf-enabled", "`#false` only; `#true` needs the built-in WAF (not yet): run a WAF agent with a filter of type \"agent\""),
		h("websocket", "Caddy proxies WebSocket upgrades on every route",
			w("enabled", "WebSocket upgrades are proxied on every route"),
			w("ping-interval-secs", "frames are relayed as they come; the proxy sends no pings"),
			w("ping-timeout-secs", "frames are relayed as they come; the proxy sends no pings"),
			w("max-message-size-bytes", "frames are relayed as they come, of any size"),
		),
		h("websocket-inspection", "`#false` only; `#true` needs WebSocket frame inspection (not yet)"),
		ny("fallback", "inference fallback upstreams"),
		policiesBlock(),
		h("service-type", "checked against the route's content"),
		retryPolicy(),
		ny("mcp", "MCP inspection"),
		ny("a2a", "A2A inspection"),
		w("circuit-breaker", "not a route setting in Sentinel; put it in the upstream"),
		ext(h("when-disabled", "what a route disabled through the API does: `\"503\"` (default, JSON body) or `\"next-route\"` (falls through)")),
	)
}

func healthCheck() *Key {
	return h("health-check", "active checks of every target of the upstream, also those added through the API",
		open(h("type", "`tcp` (default), `http` (path, expected-status, host), `grpc` (service, grpc.health.v1): active checks of the `sentinel` app")),
		h("interval-secs", "interval (default 10)"),
		h("timeout-secs", "timeout (default 5)"),
		h("healthy-threshold", "passes in a row to become healthy (default 2)"),
		h("unhealthy-threshold", "failures in a row to become unhealthy (default 3)"),
	)
}

// targetKeys are the keys of a target's block form
// (`target { address "…"; weight 2 }`).
func targetKeys() []*Key {
	return []*Key{
		h("address", "host:port"),
		h("weight", "1 to 1048576 (default 1)"),
		open(h("metadata", "informational labels")),
	}
}

func upstreamKeys() *Key {
	return h("upstream", "an upstream of the `sentinel` app's registry; routes proxy to it through the `sentinel` upstream source",
		h("target", "a registry target; `weight=` (1 to 1048576, default 1) feeds weighted policies and can be changed live through the API; a zone prefix (`zone=Z,host:port` or `Z/host:port`) is removed from the address and feeds `locality-aware`", targetKeys()...),
		h("targets", "block form of the targets", h("target", "one target", targetKeys()...)),
		h("address", "single-target shorthand"),
		open(h("load-balancing", "selection policy (see the load-balancing table)")),
		healthCheck(),
		h("connection-pool", "http transport connection settings",
			h("max-connections", "`max_conns_per_host`"),
			h("max-idle", "`keep_alive.max_idle_conns_per_host`"),
			h("idle-timeout-secs", "`keep_alive.idle_timeout`"),
			w("max-lifetime-secs", "Go's transport has no connection lifetime limit"),
			h("idle-timeout", "legacy spelling of idle-timeout-secs"),
			w("max-lifetime", "legacy spelling of max-lifetime-secs"),
		),
		h("timeouts", "http transport timeouts",
			h("connect-secs", "`dial_timeout`"),
			h("request-secs", "`response_header_timeout`"),
			h("read-secs", "`read_timeout`"),
			h("write-secs", "`write_timeout`"),
			h("connect", "legacy spelling of connect-secs"),
			h("request", "legacy spelling of request-secs"),
			h("read", "legacy spelling of read-secs"),
			h("write", "legacy spelling of write-secs"),
		),
		h("tls", "http transport `tls`",
			h("sni", "`server_name`"),
			h("insecure-skip-verify", "`insecure_skip_verify`"),
			h("client-cert", "`client_certificate_file`"),
			h("client-key", "`client_certificate_key_file`"),
			h("ca-cert", "`ca` file trust pool"),
		),
		h("http-version", "http transport `versions`",
			h("min-version", "1 or 2"),
			h("max-version", "1, 2 or 3 (HTTP/3 is experimental in Caddy)"),
			ext(h("h2c", "`#true`: HTTP/2 over cleartext to the upstream")),
			w("h2-ping-interval", "Go's HTTP/2 transport pings are not configurable through Caddy"),
			w("max-h2-streams", "Go's HTTP/2 transport follows the server's limit"),
		),
		circuitBreaker(),
		ny("discovery", "service discovery"),
	)
}

func filterKeys() *Key {
	// The keys of a filter depend on its type: checkFilter validates them.
	return open(h("filter", "a filter; its keys depend on `type` (see the filter table)",
		h("type", "the filter type"),
	))
}

// filterTypes lists the keys of each filter type.
func filterTypes() map[string]*Key {
	return map[string]*Key{
		"rate-limit": ny("rate-limit", "rate limiting"),
		"agent":      agentFilterKey,
		"geo":        ny("geo", "GeoIP filtering"),
		"headers": h("headers", "Caddy `headers` (+ `header_rename`)",
			append([]*Key{h("phase", "`request`, `response` or `both`")}, headerOps()...)...),
		"compress": h("compress", "Caddy `encode`",
			h("algorithms", "`gzip`, `zstd` (`br`/`brotli`, `deflate`: warning, not in Caddy)"),
			h("min-size", "`minimum_length`"),
			h("level", "gzip level"),
			h("content-types", "`match.headers.Content-Type`"),
		),
		"cors": h("cors", "`sentinel_cors` handler (the original ignored these keys)",
			h("allowed-origins", "origins, `*` or `https://*.example.com`"),
			h("allowed-methods", "methods"),
			h("allowed-headers", "request headers"),
			h("exposed-headers", "response headers exposed"),
			h("allow-credentials", "credentials"),
			h("max-age-secs", "preflight cache"),
		),
		"timeout": h("timeout", "`sentinel_timeout` and transport timeouts",
			h("request-timeout-secs", "`sentinel_timeout`"),
			h("upstream-timeout-secs", "transport `response_header_timeout`"),
			h("connect-timeout-secs", "transport `dial_timeout`"),
		),
		"log": h("log", "the server's access log",
			h("log-request", "access log entry for the route"),
			h("log-response", "status and size are part of every entry"),
			w("log-body", "bodies are not logged"),
			w("max-body-log-size", "bodies are not logged"),
			h("level", "access log entries are at info level"),
		),
		"redirect": h("redirect", "`static_response` with `Location`",
			h("status-code", "3xx status"),
			h("hostname", "target host"),
			h("scheme", "target scheme"),
			h("port", "target port"),
			h("replace-full-path", "new path"),
			h("replace-prefix-match", "replaces the route's path-prefix"),
		),
		"wasm": ext(h("wasm", "`sentinel_wasm` handler running the plugin",
			h("plugin", "plugin id from `plugins { }`"),
		)),
		"grpc-web": ext(h("grpc-web", "`grpc_web` handler: gRPC-Web (binary and text) from browsers to gRPC upstreams")),
		"url-rewrite": h("url-rewrite", "Caddy `rewrite` (+ `Host` header)",
			h("hostname", "`Host` sent upstream"),
			h("replace-full-path", "`uri`"),
			h("replace-prefix-match", "`path_regexp` on the route's path-prefix"),
		),
	}
}

func limitsKeys() *Key {
	k := h("limits", "server and route limits",
		h("max-header-size-bytes", "server `max_header_bytes`"),
		h("max-header-size", "short spelling of max-header-size-bytes"),
		w("max-header-count", "Go's HTTP server limits header bytes, not the count"),
		w("max-header-name-bytes", "covered by max-header-size-bytes"),
		w("max-header-value-bytes", "covered by max-header-size-bytes"),
		h("max-body-size-bytes", "`request_body.max_size` on every route"),
		h("max-body-size", "short spelling of max-body-size-bytes"),
		w("max-body-buffer-bytes", "bodies are streamed, not buffered"),
		w("max-body-inspection-bytes", "agent body limits are per agent (`max-request-body-bytes`) or `max-agent-body-bytes`"),
		w("max-decompression-ratio", "the proxy does not decompress request bodies"),
		w("max-decompressed-size-bytes", "the proxy does not decompress request bodies"),
		w("max-connections-per-client", "no per-client connection limit yet"),
		w("max-connections-per-route", "no per-route connection limit yet"),
		w("max-total-connections", "no global connection limit yet"),
		w("max-connections", "no global connection limit yet"),
		h("max-idle-connections-per-upstream", "transport `keep_alive.max_idle_conns_per_host` default"),
		w("max-in-flight-requests", "no in-flight request limit yet"),
		w("max-in-flight-requests-per-worker", "no worker model in Go"),
		w("max-queued-requests", "no request queue in Go's server"),
		h("max-agent-queue-depth", "default `pool.queue_depth` of every agent"),
		h("max-agent-body-bytes", "default `max_request_body_bytes`/`max_response_body_bytes` of every agent"),
		w("max-agent-response-bytes", "agent frames are bounded by the protocol (16 MiB)"),
		ny("max-requests-per-second-global", "rate limiting"),
		ny("max-requests-per-second-per-client", "rate limiting"),
		ny("max-requests-per-second-per-route", "rate limiting"),
		w("max-memory-bytes", "use GOMEMLIMIT (Caddy sets it from cgroup limits)"),
		w("max-memory-percent", "use GOMEMLIMIT (Caddy sets it from cgroup limits)"),
	)
	return k
}

func systemKeys(name string) *Key {
	return h(name, "process settings",
		h("worker-threads", "`0` = all cores, as Go does; other values: warning (set GOMAXPROCS)"),
		w("max-connections", "no global connection limit yet"),
		h("graceful-shutdown-timeout-secs", "http app `grace_period`"),
		h("daemon", "`#false` only; run under a supervisor (systemd, Kubernetes)"),
		w("pid-file", "use `sentinel run --pidfile FILE`"),
		w("user", "start the process as that user (systemd `User=`, Kubernetes `runAsUser`)"),
		w("group", "start the process with that group"),
		w("working-directory", "start the process in that directory"),
		h("trace-id-format", "`uuid` is Caddy's request id; `tinyflake`: warning"),
		h("auto-reload", "`#false` only; use `sentinel run --watch`"),
		h("route-cache-size", "accepted; routes are matched without a cache"),
		ext(h("caddy-admin", "Caddy admin endpoint address (`admin.listen`: `localhost:2019`, `unix//path|0600`), or `off`; default: off when `admin-api` is on, else Caddy's `localhost:2019`")),
	)
}

func observabilityKeys() *Key {
	logFile := func(name, note string) *Key { return h(name, note) }
	return h("observability", "metrics and logs",
		h("metrics", "Caddy metrics: `metrics` handler at address+path, http app `metrics`",
			h("enabled", "metrics on or off"),
			h("address", "served by the listener with that address, else by its own server"),
			h("path", "metrics path"),
			w("high-cardinality", "Caddy's metrics labels are fixed"),
		),
		h("logging", "Caddy logging",
			h("level", "default logger level"),
			h("format", "`json` or `pretty` (console encoder)"),
			h("timestamps", "`#false` drops the time field"),
			logFile("file", "default logger file writer"),
			h("access-log", "server access logs",
				h("enabled", "access logging on"),
				logFile("file", "file writer (stderr when absent)"),
				h("format", "`json` or `combined`, with the original's fields (`sentinel_access` encoder)"),
				w("buffer-size", "Caddy's file writer is unbuffered"),
				w("sample-rate", "Caddy's sampling is count-based; not mapped"),
				h("include-trace-id", "`trace_id` is the request's UUID, always logged"),
			),
			h("error-log", "default logger",
				h("enabled", "on or off"),
				logFile("file", "file writer"),
				h("level", "level"),
				w("buffer-size", "Caddy's file writer is unbuffered"),
			),
			h("audit-log", "`enabled #false` only; the audit log of agent decisions is not yet built",
				h("enabled", "must be #false"),
				w("file", "audit log of agent decisions (not yet)"),
				w("buffer-size", "audit log of agent decisions (not yet)"),
				w("log-blocked", "audit log of agent decisions (not yet)"),
				w("log-agent-decisions", "audit log of agent decisions (not yet)"),
				w("log-waf-events", "audit log of agent decisions (not yet)"),
			),
		),
		ny("tracing", "tracing"),
	)
}

// Schema is the whole configuration schema: the top-level nodes of a
// sentinel.kdl with every key below them and what the adapter does with it.
// docs/compatibility.md is generated from it.
func Schema() *Key {
	return h("", "document",
		h("schema-version", "must be \"1.0\""),
		h("version", "alias of schema-version"),
		systemKeys("system"),
		deprecated(systemKeys("server"), "deprecated name of `system` (warning)"),
		h("listeners", "one Caddy server per listener", h("listener", "a Caddy server",
			h("address", "`listen`"),
			h("protocol", "`http`, `https`, `h2` (h2c without TLS), `h3` (HTTP/3 next to h1/h2)"),
			tlsListener(),
			h("default-route", "last route of the server"),
			ny("namespace", "namespaces"),
			h("request-timeout-secs", "server `read_timeout`; also bounds the header read when shorter than header-timeout-secs"),
			ext(h("trusted-proxies", "server `trusted_proxies` (static, strict): only from these peers do the client's X-Forwarded-*, X-Real-IP and Forwarded pass; from others the proxy sets X-Forwarded-* and X-Real-IP from the connection and removes Forwarded")),
			ext(h("header-timeout-secs", "server `read_header_timeout`: time to receive a request's headers (default 10 s, or request-timeout-secs when shorter); slow header senders are closed")),
			h("keepalive-timeout-secs", "server `idle_timeout`"),
			w("max-concurrent-streams", "Caddy does not expose the HTTP/2 stream limit (Go default: 250)"),
			w("keepalive-max-requests", "Go's HTTP server has no per-connection request limit"),
			ext(h("allow-0rtt", "`#true`: accept TLS 1.3 / QUIC 0-RTT early data (replayable: only for idempotent traffic)")),
		)),
		h("routes", "routes of every listener", routeKeys()),
		h("upstreams", "upstream pools", upstreamKeys()),
		h("filters", "named filters", filterKeys()),
		agentsBlock(),
		ny("waf", "WAF (runs as an agent)"),
		ny("namespace", "namespaces"),
		ny("namespaces", "namespaces"),
		limitsKeys(),
		observabilityKeys(),
		ny("rate-limits", "rate limiting"),
		ny("cache", "response caching"),
		h("include", "files matching the glob, relative to the including file; regular files only, 16 MiB for all files together"),
		ext(h("admin-api", "the control-plane API (`/api/v1`) of the `sentinel` app, on its own listener",
			h("enabled", "`#false` turns the API off"),
			h("address", "listen address (default 127.0.0.1:9901)"),
			h("auth", "bearer tokens; required (or tls.client-ca)",
				h("type", "`\"bearer\"`"),
				h("token", "`token \"${ADMIN_API_TOKEN}\" [scope=\"read\"|\"operate\"|\"admin\"] [name=\"…\"]` (repeatable); only its SHA-256 goes into the Caddy JSON"),
			),
			h("tls", "HTTPS for the API, optionally with client certificates",
				h("cert-file", "server certificate"),
				h("key-file", "server key"),
				h("client-ca", "CA of client certificates (mTLS)"),
				h("allowed-identities", "client certificate CN or DNS names allowed"),
			),
			h("state-file", "where API changes are saved, to survive restarts"),
			fleetBlock,
			h("max-body-bytes", "request body limit (default 1 MiB)"),
			h("allowed-target-networks", "CIDR prefixes or IPs that targets added through the API must be in (may include loopback); default: any address but loopback, link-local, unspecified, multicast and the proxy's own"),
		)),
		ext(h("plugins", "in-process WASM plugins (`sentinel_wasm`), used by filters of type \"wasm\"", pluginKeys())),
	)
}
