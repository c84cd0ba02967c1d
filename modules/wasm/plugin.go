package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tetratelabs/wazero"

	"github.com/sentinel-proxy/sentinel/internal/httperr"
	"github.com/sentinel-proxy/sentinel/modules/audit"
)

// Defaults of a plugin's limits.
const (
	// DefaultMaxMemoryPages is the default memory limit of an instance:
	// 256 pages of 64 KiB, 16 MiB.
	DefaultMaxMemoryPages = 256
	// DefaultTimeout is the default deadline of one hook call.
	DefaultTimeout = 50 * time.Millisecond
	// DefaultMaxBodyBytes is the default number of request body bytes
	// buffered for on_request_body.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxIdleInstances is the default number of idle instances a
	// plugin keeps in its pool.
	DefaultMaxIdleInstances = 64
	// instantiateTimeout bounds an instantiation, which runs the guest's
	// _initialize (for Go guests: the runtime and package init).
	instantiateTimeout = 5 * time.Second
)

// ABI names.
const (
	// ABISentinel is Sentinel's own core-wasm ABI, host module "sentinel_v1".
	ABISentinel = "sentinel"
	// ABIHTTPWasm is the http-wasm ABI, host module "http_handler".
	ABIHTTPWasm = "http-wasm"
)

// Failure modes.
const (
	// FailureOpen skips a failed plugin: the request goes on to the next
	// plugin as if it had been allowed.
	FailureOpen = "open"
	// FailureClosed answers a request whose plugin failed with 503 Service
	// Unavailable and a JSON body.
	FailureClosed = "closed"
)

// Plugin is one WASM plugin of a sentinel_wasm handler.
type Plugin struct {
	// The plugin's name, used in logs, metrics and error responses.
	// Defaults to `plugin<index>`; must be unique within the handler.
	ID string `json:"id,omitempty"`

	// The path of the .wasm file; required.
	Path string `json:"path,omitempty"`

	// The hex SHA-256 of the .wasm file (optional pin): a file with
	// another digest fails the load, so a replaced module never runs.
	SHA256 string `json:"sha256,omitempty"`

	// The ABI the plugin speaks: `sentinel` (host module "sentinel_v1")
	// or `http-wasm`. Detected from the module's imports when omitted: a
	// module importing from "http_handler" is an http-wasm guest.
	ABI string `json:"abi,omitempty"`

	// The plugin's configuration, any JSON value. A Sentinel-ABI plugin
	// reads it with the get_config host function (available from
	// _initialize on); an http-wasm plugin with get_config.
	Config json.RawMessage `json:"config,omitempty"`

	// The memory limit of one instance, in 64 KiB pages. Defaults to 256
	// (16 MiB). max_memory takes precedence when both are set.
	MaxMemoryPages uint32 `json:"max_memory_pages,omitempty"`

	// The memory limit of one instance as a size such as "16MiB" (rounded
	// up to whole 64 KiB pages; at most 4GiB).
	MaxMemory string `json:"max_memory,omitempty"`

	// The deadline of one hook call (Sentinel ABI); a plugin still running
	// at the deadline is interrupted and handled by failure_mode. Defaults
	// to 50ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// What to do when the plugin traps, times out or cannot be
	// instantiated: `open` (skip the plugin) or `closed` (answer 503).
	// Defaults to `closed`.
	FailureMode string `json:"failure_mode,omitempty"`

	// How many request body bytes are buffered for on_request_body; the
	// plugin sees at most this many, the upstream still receives the whole
	// body. Defaults to 1 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`

	// How many idle instances the plugin keeps for reuse; more are created
	// under load and closed when returned to a full pool. Defaults to 64.
	MaxIdleInstances int `json:"max_idle_instances,omitempty"`

	route    string     // the handler's route id, for get_route_id
	audit    *audit.App // the audit trail; nil: off
	pages    uint32
	cache    wazero.CompilationCache
	cacheDir string // "" = memory only
	mu       sync.Mutex
	active   int  // requests using the plugin
	closing  bool // cleanup was called
	released bool // resources released
	// graceOver is set graceAfterCleanup after cleanup; until then the
	// plugin keeps serving late requests of the unloaded config.
	graceOver         bool
	graceAfterCleanup time.Duration
	timeout           time.Duration
	closed            bool
	logger            *zap.Logger
	metrics           *metrics
	cacheKey          string
	module            *compiledModule
	pool              *instancePool
	httpWasm          *httpWasmPlugin
	calls             [numPhases]callMetrics
	decisions         [5]prometheus.Counter
	traps             prometheus.Counter
	timeouts          prometheus.Counter
}

// provision loads the plugin's module and applies the defaults.
func (p *Plugin) provision(ctx caddy.Context, logger *zap.Logger, m *metrics) (err error) {
	p.graceAfterCleanup = releaseGrace
	p.logger, p.metrics = logger, m
	if p.Path == "" {
		return fmt.Errorf("path is required")
	}
	switch p.FailureMode {
	case "", FailureClosed:
		p.closed = true
	case FailureOpen:
	default:
		return fmt.Errorf("failure_mode must be %q or %q, not %q", FailureOpen, FailureClosed, p.FailureMode)
	}
	p.pages = DefaultMaxMemoryPages
	if p.MaxMemoryPages > 0 {
		p.pages = p.MaxMemoryPages
	}
	if p.MaxMemory != "" {
		n, err := humanize.ParseBytes(p.MaxMemory)
		if err != nil {
			return fmt.Errorf("max_memory: %w", err)
		}
		if n == 0 || n > 1<<32 {
			return fmt.Errorf("max_memory %q: must be between 1 byte and 4GiB", p.MaxMemory)
		}
		p.pages = uint32((n + 65535) / 65536)
	}
	if p.pages > 65536 {
		return fmt.Errorf("max_memory_pages %d: at most 65536", p.pages)
	}
	p.timeout = time.Duration(p.Timeout)
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.MaxBodyBytes <= 0 {
		p.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if p.MaxIdleInstances <= 0 {
		p.MaxIdleInstances = DefaultMaxIdleInstances
	}
	config := []byte(p.Config)
	if len(bytes.TrimSpace(config)) == 0 {
		config = nil
	}

	code, err := os.ReadFile(p.Path)
	if err != nil {
		return err
	}
	abi := p.ABI
	switch abi {
	case "", ABISentinel, ABIHTTPWasm:
	default:
		return fmt.Errorf("abi must be %q or %q, not %q", ABISentinel, ABIHTTPWasm, abi)
	}
	if p.cache == nil { // provisioned without a Handler (tests)
		if p.cache, err = compilationCache(""); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(code)
	hash := hex.EncodeToString(sum[:])
	if p.SHA256 != "" && !strings.EqualFold(p.SHA256, hash) {
		return fmt.Errorf("%s: sha256 is %s, the pin wants %s", p.Path, hash, p.SHA256)
	}
	p.cacheKey = fmt.Sprintf("%s/%d", hash, p.pages)
	// A module no config has loaded yet is compiled, or read back from
	// the disk cache: seconds for a Go-built plugin the first time, so
	// it is said before and after.
	fresh := !inUse(modules, p.cacheKey) && !inUse(httpWasms, httpWasmKey(hash, p.pages, config))
	var before map[string]os.FileInfo
	start := time.Now()
	if fresh {
		logger.Info("loading WASM plugin (compiling it takes seconds the first time; later loads use the cache)",
			zap.String("path", p.Path), zap.Int("bytes", len(code)), zap.String("cache_dir", p.cacheDir))
		before = cacheFiles(p.cacheDir)
	}
	if abi == "" {
		if abi, err = detectABI(ctx, code, p.cache); err != nil {
			return err
		}
	}
	p.ABI = abi
	p.initMetrics()
	defer func() {
		if fresh && err == nil {
			logger.Info("WASM plugin loaded", zap.String("path", p.Path), zap.String("abi", abi),
				zap.Duration("duration", time.Since(start)), zap.Bool("cache_hit", p.cacheDir != "" && !cacheWritten(p.cacheDir, before)),
				zap.String("cache_dir", p.cacheDir))
		}
	}()
	if abi == ABIHTTPWasm {
		p.cacheKey = ""
		err = p.provisionHTTPWasm(ctx, code, hash, config)
		return err
	}

	mod, err := loadModule(p.cacheKey, code, p.pages, p.cache)
	if err != nil {
		return err
	}
	p.module = mod
	p.pool = newInstancePool(p, config)
	// Instantiate one instance now, so that a broken plugin or config
	// fails the config load rather than the first request.
	inst, err := p.pool.newInstance(context.Background())
	if err != nil {
		return err // Handler.Provision's caller runs Cleanup
	}
	p.pool.put(inst)
	return nil
}

// inUse reports whether a config holds the key of a usage pool.
func inUse(pool *caddy.UsagePool, key string) bool {
	n, ok := pool.References(key)
	return ok && n > 0
}

// releaseGrace is how long an unloaded config's plugin keeps serving:
// Caddy may clean up a config while its server still finishes requests,
// or reads a last request of a kept-alive connection.
const releaseGrace = 5 * time.Second

// cleanup releases the plugin when the config that owns it is unloaded:
// after a grace period, and only when the last request using the plugin
// is done.
func (p *Plugin) cleanup() {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return
	}
	p.closing = true
	grace := p.graceAfterCleanup
	p.mu.Unlock()
	finish := func() {
		p.mu.Lock()
		p.graceOver = true
		done := p.active == 0 && !p.released
		if done {
			p.released = true
		}
		p.mu.Unlock()
		if done {
			p.releaseResources()
		}
	}
	if grace <= 0 {
		finish()
		return
	}
	time.AfterFunc(grace, finish)
}

// acquire registers a request using the plugin; it fails once the plugin
// has been released.
func (p *Plugin) acquire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return false
	}
	p.active++
	return true
}

// release ends a request registered by acquire, releasing the plugin if
// it was the last one after cleanup.
func (p *Plugin) release() {
	p.mu.Lock()
	p.active--
	done := p.closing && p.graceOver && p.active == 0 && !p.released
	if done {
		p.released = true
	}
	p.mu.Unlock()
	if done {
		p.releaseResources()
	}
}

// releaseResources closes the idle instances and releases the compiled
// module (or http-wasm middleware).
func (p *Plugin) releaseResources() {
	if p.pool != nil {
		p.pool.close()
	}
	if p.module != nil {
		_, _ = modules.Delete(p.cacheKey)
	}
	if p.httpWasm != nil {
		p.httpWasm.close()
	}
}

// stage returns the http.Handler running this plugin before next.
func (p *Plugin) stage(ctx context.Context, next http.Handler) http.Handler {
	if p.httpWasm != nil {
		return p.httpWasm.stage(ctx, p, next)
	}
	return &sentinelStage{p: p, next: next}
}

// fail handles a request whose plugin failed according to the failure
// mode; it reports whether the request was answered. Closed, the
// failure is the handler's error (503, for the server's error routes and
// logs, see failure); open, the request goes on.
func (p *Plugin) fail(r *http.Request, reason string) bool {
	if !p.closed {
		p.decisions[decisionFailureOpen].Inc()
		return false
	}
	p.decisions[decisionFailureClosed].Inc()
	if cs, ok := r.Context().Value(chainKey{}).(*chainState); ok && cs.failure == nil {
		cs.failure = p.failure(reason)
	}
	return true
}

// failure is the error of a closed failure: 503 with the plugin and the
// reason, which the error route of the KDL adapter's listeners shows as
// `{"error":"wasm plugin failure","plugin":…,"reason":…,"status":503}`.
func (p *Plugin) failure(reason string) error {
	return caddyhttp.Error(http.StatusServiceUnavailable, &httperr.Public{
		Message: "wasm plugin failure",
		Fields:  map[string]string{"plugin": p.ID, "reason": reason},
	})
}

// abiOf returns the ABI of a compiled module from its imports.
func abiOf(imports []string) string {
	for _, m := range imports {
		if m == httpWasmModule {
			return ABIHTTPWasm
		}
	}
	return ABISentinel
}
