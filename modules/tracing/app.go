// Package tracing is Sentinel's OpenTelemetry tracing: the
// sentinel_tracing app owns a tracer provider that exports spans over
// OTLP (gRPC or HTTP) to the endpoint of the configuration, with the
// configuration's sampling ratio and service name (not the process's
// OTEL_* environment, which Caddy's own `tracing` handler reads);
// the sentinel_tracing handler starts the server span of each request;
// the sentinel_traced selection policy records the load-balancing
// choice; and the hooks of this package (StartUpstream, StartAgent,
// WrapPlugin) let the sentinel transport, the agents and the WASM
// plugins record their spans, as children of the request's, and pass
// the W3C traceparent on.
//
// When the configuration has no sentinel_tracing app, nothing of this
// package runs on the request path: the modules check once, when
// provisioned (Configured), and keep a boolean.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(App{})
}

// AppName is the Caddy app name of the tracing app.
const AppName = "sentinel_tracing"

// instrumentationName is the name of Sentinel's tracer.
const instrumentationName = "github.com/sentinel-proxy/sentinel/modules/tracing"

// Defaults of the app's settings (the original's).
const (
	DefaultEndpoint      = "http://localhost:4317"
	DefaultSamplingRatio = 0.01
	DefaultServiceName   = "sentinel"
	defaultBatchTimeout  = 5 * time.Second
	defaultExportTimeout = 10 * time.Second
)

// Export protocols.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// App exports the spans of Sentinel's requests over OTLP. Its presence
// in a configuration turns tracing on for the modules that look for it
// (the sentinel_tracing handler, the sentinel transport, the agents and
// WASM handlers, the sentinel_traced selection policy).
type App struct {
	// Protocol is the OTLP transport: `grpc` (default) or `http`
	// (protobuf over HTTP, POST to the endpoint's path, `/v1/traces`
	// when the endpoint has none).
	Protocol string `json:"protocol,omitempty"`

	// Endpoint is the collector's URL, e.g. `http://collector:4317`
	// (gRPC) or `https://collector:4318/v1/traces` (HTTP). The scheme
	// chooses TLS (`https`) or plain text (`http`). Default
	// `http://localhost:4317`.
	Endpoint string `json:"endpoint,omitempty"`

	// SamplingRatio is the fraction of the requests without a sampled
	// parent that are traced, from 0 to 1 (default 0.01). The sampling
	// is parent-based: a request whose incoming traceparent says
	// sampled (or not) is traced (or not) whatever the ratio.
	SamplingRatio *float64 `json:"sampling_ratio,omitempty"`

	// ServiceName is the resource's service.name (default `sentinel`).
	ServiceName string `json:"service_name,omitempty"`

	// BatchTimeout is the longest a finished span waits before it is
	// exported (default 5s).
	BatchTimeout caddy.Duration `json:"batch_timeout,omitempty"`

	// ExportTimeout bounds each export to the collector (default 10s).
	ExportTimeout caddy.Duration `json:"export_timeout,omitempty"`

	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppName,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds the exporter and the tracer provider.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.Validate(); err != nil {
		return err
	}
	exp, err := a.exporter(ctx)
	if err != nil {
		return err
	}
	ratio := DefaultSamplingRatio
	if a.SamplingRatio != nil {
		ratio = *a.SamplingRatio
	}
	batch := time.Duration(a.BatchTimeout)
	if batch <= 0 {
		batch = defaultBatchTimeout
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", a.serviceName()),
		attribute.String("telemetry.sdk.name", "opentelemetry"),
		attribute.String("telemetry.sdk.language", "go"),
	)
	a.tp = sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(batch)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(res),
	)
	a.tracer = a.tp.Tracer(instrumentationName)
	return nil
}

// Validate checks the settings.
func (a *App) Validate() error {
	switch a.Protocol {
	case "", ProtocolGRPC, ProtocolHTTP:
	default:
		return fmt.Errorf("sentinel_tracing: protocol %q: expected %q or %q", a.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if a.SamplingRatio != nil && (*a.SamplingRatio < 0 || *a.SamplingRatio > 1) {
		return fmt.Errorf("sentinel_tracing: sampling_ratio %v: expected a number from 0 to 1", *a.SamplingRatio)
	}
	if _, err := parseEndpoint(a.endpoint()); err != nil {
		return fmt.Errorf("sentinel_tracing: %w", err)
	}
	return nil
}

func (a *App) endpoint() string {
	if a.Endpoint == "" {
		return DefaultEndpoint
	}
	return a.Endpoint
}

func (a *App) serviceName() string {
	if a.ServiceName == "" {
		return DefaultServiceName
	}
	return a.ServiceName
}

// parseEndpoint checks a collector URL: http or https, with a host.
func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url's error quotes the URL; the endpoint is not a secret but
		// may carry credentials: name the problem only.
		return nil, errors.New("endpoint: not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint: scheme %q: expected http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("endpoint: no host")
	}
	if u.User != nil {
		return nil, errors.New("endpoint: credentials in the URL are not supported")
	}
	return u, nil
}

// exporter builds the OTLP exporter of the settings. Neither exporter
// connects before its first export.
func (a *App) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	u, _ := parseEndpoint(a.endpoint())
	timeout := time.Duration(a.ExportTimeout)
	if timeout <= 0 {
		timeout = defaultExportTimeout
	}
	if a.Protocol == ProtocolHTTP {
		path := u.Path
		if path == "" || path == "/" {
			path = "/v1/traces"
		}
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path), otlptracehttp.WithTimeout(timeout)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("sentinel_tracing: OTLP/HTTP exporter: %w", err)
		}
		return exp, nil
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("sentinel_tracing: endpoint: a gRPC endpoint has no path (got %q)", u.Path)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host), otlptracegrpc.WithTimeout(timeout)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("sentinel_tracing: OTLP/gRPC exporter: %w", err)
	}
	return exp, nil
}

// Start does nothing: the provider exports as spans end.
func (a *App) Start() error {
	a.logger.Info("tracing on", zap.String("protocol", strings.ToUpper(a.protocol())), zap.String("service_name", a.serviceName()))
	return nil
}

func (a *App) protocol() string {
	if a.Protocol == "" {
		return ProtocolGRPC
	}
	return a.Protocol
}

// Stop exports the spans still buffered and shuts the exporter down.
func (a *App) Stop() error {
	if a.tp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tp.Shutdown(ctx); err != nil {
		a.logger.Warn("exporting the last spans", zap.Error(err))
	}
	return nil
}

// Configured reports whether the configuration of ctx has the tracing
// app (loading it if it was not yet). Modules call it when provisioned
// and keep the answer: without the app, their request path has no
// tracing code beyond a boolean.
func Configured(ctx caddy.Context) bool {
	app, err := ctx.AppIfConfigured(AppName)
	return err == nil && app != nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
