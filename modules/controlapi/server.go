// Package controlapi is Sentinel's control-plane HTTP API, /api/v1: it
// lists and changes the upstreams and targets of the registry (adding,
// removing, reweighting and draining targets), switches routes on and
// off, reloads and validates the configuration, and describes itself as
// an OpenAPI 3.0 document at /api/v1/openapi.json.
//
// The sentinel app serves a Server on a listener of its own. Every call
// is authenticated (bearer tokens with scopes, or verified client
// certificates), every mutation is written to the audit log, and request
// bodies are decoded strictly (unknown or repeated fields, trailing data
// and oversized bodies are refused).
package controlapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sentinel-proxy/sentinel/internal/logring"
	"github.com/sentinel-proxy/sentinel/modules/adminui"
	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/registry"
)

// Hooks are the app's callbacks for what the registry cannot do. A nil
// hook disables its endpoints (501 for reload and validate, an empty list
// or 404 for agents).
type Hooks struct {
	// Reload re-reads the config file and applies it. Its result is added
	// to the 200 response; an error is answered 422, each of its lines
	// (or joined errors) an element of "errors".
	Reload func(ctx context.Context) (ReloadResult, error)

	// Validate adapts and provisions the config file without applying
	// it. It returns the problems found as "file:line:col: msg" lines; an
	// error means the file could not be validated at all.
	Validate func(ctx context.Context) ([]string, error)

	// Source returns the config file's path and text (nil: GET
	// /api/v1/config/source answers 501).
	Source func() (file string, content []byte, err error)

	// ValidateSource validates content as if it were the config file,
	// without applying it, like Validate (nil: POST
	// /api/v1/config/validate answers 501).
	ValidateSource func(ctx context.Context, content []byte) ([]string, error)

	// Metrics returns the Prometheus registry of the config (nil hook:
	// GET /api/v1/metrics/summary answers 501).
	Metrics func() prometheus.Gatherer

	// Agents lists the agents (nil: none).
	Agents func() []agents.Status

	// OwnAddresses lists the proxy's own listening addresses (host:port;
	// an empty host is a wildcard), which targets added through the API
	// may never point at. Nil: none besides the API's own.
	OwnAddresses func() []string

	// Resolve looks up the addresses of a target's host name (nil: the
	// system resolver).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)

	// Trail, when set, receives each audit entry as an audit event (kind
	// control_plane) as well.
	Trail *audit.App
}

// Server is the handler of the control-plane API.
type Server struct {
	reg        *registry.Registry
	audit      *zap.Logger
	hooks      Hooks
	tokens     []tokenEntry
	identities map[string]struct{}
	maxBody    int64
	// editor is Config.ConfigEditor: PUT /api/v1/config/source is on.
	editor bool
	// endpoints is the table of the API; mux routes to them.
	endpoints []endpoint
	// byPattern finds an endpoint by its ServeMux pattern.
	byPattern map[string]*endpoint
	mux       *http.ServeMux
	// openapi is the OpenAPI document generated from endpoints.
	openapi []byte
	// ui serves the admin UI's files under /ui/.
	ui     http.Handler
	csrf   *http.CrossOriginProtection
	policy *targetPolicy
	// refusals bounds the audit entries of refused read calls, so that
	// a flood of unauthenticated requests cannot fill a disk.
	refusals *rate.Limiter
	// suppressed counts the refused reads not audited since the last
	// entry.
	suppressed atomic.Int64
	// reloading is held while a reload runs; concurrent reloads are
	// refused.
	reloading sync.Mutex
}

// New validates cfg and returns the API's handler for reg. audit receives
// one entry per mutation (nil: none); hooks may be left zero.
func New(cfg Config, reg *registry.Registry, audit *zap.Logger, hooks Hooks) (*Server, error) {
	if reg == nil {
		return nil, errors.New("controlapi: no registry")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if audit == nil {
		audit = zap.NewNop()
	}
	// The admin UI's audit view keeps the recent entries (bounded).
	ring := logring.Audit.Core(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.DebugLevel)
	audit = audit.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, ring) }))
	s := &Server{
		reg:        reg,
		audit:      audit,
		hooks:      hooks,
		tokens:     newTokenEntries(cfg.Tokens),
		identities: map[string]struct{}{},
		maxBody:    cfg.maxBody(),
		editor:     cfg.ConfigEditor,
		csrf:       http.NewCrossOriginProtection(),
		ui:         adminui.Handler(),
	}
	if cfg.certAuth() {
		for _, id := range cfg.TLS.AllowedIdentities {
			s.identities[strings.ToLower(id)] = struct{}{}
		}
	}
	own := hooks.OwnAddresses
	listen := cfg.ListenAddress()
	hooks.OwnAddresses = func() []string {
		var out []string
		if own != nil {
			out = own()
		}
		return append(out, listen)
	}
	s.policy = newTargetPolicy(cfg, hooks)
	s.refusals = rate.NewLimiter(refusalRate, refusalBurst)
	s.endpoints = s.endpointTable()
	s.mux = http.NewServeMux()
	s.byPattern = make(map[string]*endpoint, len(s.endpoints))
	for i := range s.endpoints {
		ep := &s.endpoints[i]
		s.byPattern[ep.method+" "+ep.pattern] = ep
		s.mux.Handle(ep.method+" "+ep.pattern, s.endpointHandler(ep))
	}
	doc, err := openAPIDocument(s.endpoints)
	if err != nil {
		return nil, fmt.Errorf("controlapi: generating the OpenAPI document: %w", err)
	}
	s.openapi = doc
	return s, nil
}
