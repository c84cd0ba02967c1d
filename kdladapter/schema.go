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
	// Ref, when set, is the dotted path of the block whose keys this
	// block shares (a namespace's routes are those of `routes`): the
	// compatibility table does not repeat them.
	Ref string
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

// retryPolicy is declared with its mapper (upstreams.go).
func retryPolicy() *Key { return retryPolicyKey }

// routeKeys is declared with its mapper (routeKey, routes.go).
func routeKeys() *Key { return routeKey }

// healthCheck is declared with its mapper (healthCheckKey, upstreams.go).
func healthCheck() *Key { return healthCheckKey }

// targetKeys are the keys of a target's block form, declared with their
// mapper (targetKey, upstreams.go).
func targetKeys() []*Key { return targetKey.Children }

func upstreamKeys() *Key {
	keys := []*Key{
		h("target", "a registry target; `weight=` (1 to 1048576, default 1) feeds weighted policies and can be changed live through the API; a zone prefix (`zone=Z,host:port` or `Z/host:port`) is removed from the address and feeds `locality-aware`", targetKeys()...),
		h("targets", "block form of the targets", h("target", "one target", targetKeys()...)),
		h("address", "single-target shorthand"),
		open(h("load-balancing", "selection policy (see the load-balancing table)")),
		healthCheck(),
	}
	// connection-pool, timeouts, tls, http-version and circuit-breaker
	// are declared with their mappers (upstreams.go).
	keys = append(keys, transportSettings.key.Children...)
	keys = append(keys, circuitBreakerKey, discoveryKey)
	return h("upstream", "an upstream of the `sentinel` app's registry; routes proxy to it through the `sentinel` upstream source", keys...)
}

func filterKeys() *Key {
	// The keys of a filter depend on its type: checkFilter validates them.
	return open(h("filter", "a filter; its keys depend on `type` (see the filter table)",
		h("type", "the filter type"),
	))
}

// filterTypes lists the keys of each filter type (the typed ones are
// declared with their mappers in filters.go and agents.go).
func filterTypes() map[string]*Key {
	return map[string]*Key{
		"rate-limit":  rateLimitFilterKey,
		"agent":       agentFilterKey,
		"geo":         geoFilterKey,
		"headers":     headersFilterKey,
		"compress":    compressFilterKey,
		"cors":        corsFilterKey,
		"timeout":     timeoutFilterKey,
		"log":         logFilterKey,
		"redirect":    redirectFilterKey,
		"wasm":        wasmFilterKey,
		"grpc-web":    grpcWebFilterKey,
		"url-rewrite": urlRewriteFilterKey,
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
		h("max-in-flight-requests", "`sentinel_inflight` (zone \"global\") on every route: one count shared by all routes and listeners, 503 with `Retry-After: 1` above it (only when set: the original's default of 10000 is not applied)"),
		w("max-in-flight-requests-per-worker", "no worker model in Go"),
		w("max-queued-requests", "no request queue in Go's server"),
		h("max-agent-queue-depth", "default `pool.queue_depth` of every agent"),
		h("max-agent-body-bytes", "default `max_request_body_bytes`/`max_response_body_bytes` of every agent"),
		w("max-agent-response-bytes", "agent frames are bounded by the protocol (16 MiB)"),
		limitsRateKey("max-requests-per-second-global"),
		limitsRateKey("max-requests-per-second-per-client"),
		limitsRateKey("max-requests-per-second-per-route"),
		w("max-memory-bytes", "use GOMEMLIMIT (Caddy sets it from cgroup limits)"),
		w("max-memory-percent", "use GOMEMLIMIT (Caddy sets it from cgroup limits)"),
	)
	return k
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
		h("listeners", "one Caddy server per listener (listeners that differ only in their address share one)", listenerKey), // listeners.go
		h("routes", "routes of every listener", routeKeys()),
		h("upstreams", "upstream pools", upstreamKeys()),
		h("filters", "named filters", filterKeys()),
		agentsBlock(),
		ny("waf", "WAF (runs as an agent)"),
		namespaceKey(), // namespaces.go
		h("namespaces", "a list of namespace blocks", ref(namespaceKey(), "namespace")),
		limitsKeys(),
		observabilityKeys(),
		rateLimitsKeys(),
		cacheStorageSpec,
		h("include", "files matching the glob, relative to the including file; regular files only, 16 MiB for all files together"),
		adminAPIKey, // controlplane.go
		ext(h("plugins", "in-process WASM plugins (`sentinel_wasm`), used by filters of type \"wasm\"", pluginKey)),
	)
}
