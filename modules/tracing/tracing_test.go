package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorder is a tracer provider whose ended spans the test reads.
func recorder(t *testing.T, sampler sdktrace.Sampler) (*tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sr, tp.Tracer(instrumentationName)
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func byName(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func TestAppValidate(t *testing.T) {
	ratio := func(f float64) *float64 { return &f }
	for _, c := range []struct {
		app  App
		want string
	}{
		{App{Protocol: "thrift"}, `protocol "thrift"`},
		{App{SamplingRatio: ratio(-0.1)}, "sampling_ratio -0.1"},
		{App{SamplingRatio: ratio(2)}, "sampling_ratio 2"},
		{App{Endpoint: "ftp://c:1"}, `scheme "ftp"`},
		{App{Endpoint: "http://"}, "no host"},
		{App{Endpoint: "http://u:p4ss@c:1"}, "credentials"},
		{App{Endpoint: "http://c:1/%zz"}, "not a valid URL"},
	} {
		err := c.app.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.app, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "p4ss") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	if err := (&App{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestAppProvisionAndStop(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, a := range []*App{
		{},
		{Protocol: ProtocolHTTP, Endpoint: "https://c.example:4318", ServiceName: "x"},
		{Protocol: ProtocolHTTP, Endpoint: "http://c.example:4318/custom"},
	} {
		if err := a.Provision(ctx); err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		if a.tracer == nil {
			t.Fatal("no tracer")
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&App{Endpoint: "http://c:4317/v1/traces"}).Provision(ctx); err == nil || !strings.Contains(err.Error(), "a gRPC endpoint has no path") {
		t.Errorf("gRPC with a path: %v", err)
	}
	if err := (&App{Protocol: "x"}).Provision(ctx); err == nil {
		t.Error("bad protocol provisioned")
	}
	if err := (&App{}).Stop(); err != nil {
		t.Errorf("stop before provision: %v", err)
	}
	if Configured(ctx) {
		t.Error("Configured without the app")
	}
}

// serve runs h with next and returns the recorded response.
func serve(t *testing.T, h *Handler, r *http.Request, next caddyhttp.HandlerFunc) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) {
			t.Fatal(err)
		}
	}
	return w
}

func newHandler(tr trace.Tracer, route string) *Handler {
	h := &Handler{Route: route}
	h.setup(tr)
	return h
}

func TestHandlerSpans(t *testing.T) {
	sr, tr := recorder(t, sdktrace.AlwaysSample())
	server, route := newHandler(tr, ""), newHandler(tr, "api")
	r := httptest.NewRequest("PATCH", "https://example.test:8443/a?token=x", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("Authorization", "secret")
	serve(t, server, r, func(w http.ResponseWriter, r *http.Request) error {
		// The route's handler names the server's span.
		return route.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusCreated)
			return nil
		}))
	})
	s := byName(sr, "PATCH api")
	if len(s) != 1 || s[0].SpanKind() != trace.SpanKindServer {
		t.Fatalf("spans: %v", sr.Ended())
	}
	got := attrs(s[0])
	for k, v := range map[string]string{"http.route": "api", "http.response.status_code": "201", "url.scheme": "https", "url.path": "/a",
		"server.address": "example.test", "server.port": "8443", "network.peer.address": "192.0.2.1", "http.request.method": "PATCH"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if strings.Contains(v, "secret") || strings.Contains(v, "token") {
			t.Errorf("%s = %q", k, v)
		}
	}

	// A route handler alone starts the span; an error is the status; an
	// unknown method is not a span name.
	r = httptest.NewRequest("PURGE", "http://h/b", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	serve(t, route, r, func(w http.ResponseWriter, r *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("down"))
	})
	s = byName(sr, "HTTP api")
	if len(s) != 1 || attrs(s[0])["http.response.status_code"] != "502" || attrs(s[0])["error.type"] != "502" || attrs(s[0])["network.protocol.version"] != "2" {
		t.Fatalf("error span: %v", s)
	}
	// An implicit 200 and a plain error.
	serve(t, server, httptest.NewRequest("GET", "http://h/c", nil), func(w http.ResponseWriter, r *http.Request) error {
		_, err := w.Write([]byte("x"))
		return err
	})
	serve(t, server, httptest.NewRequest("GET", "http://h/d", nil), func(w http.ResponseWriter, r *http.Request) error { return nil })
	for _, s := range byName(sr, "GET") {
		if attrs(s)["http.response.status_code"] != "200" {
			t.Errorf("implicit 200: %v", attrs(s))
		}
	}
}

func TestUnsampledPropagation(t *testing.T) {
	sr, tr := recorder(t, sdktrace.NeverSample())
	h := newHandler(tr, "r")
	var upstream, agent string
	serve(t, h, httptest.NewRequest("GET", "http://h/", nil), func(w http.ResponseWriter, r *http.Request) error {
		out := httptest.NewRequest("GET", "http://backend/", nil).WithContext(r.Context())
		if sp := StartUpstream(out, "127.0.0.1:1", 1); sp != nil {
			t.Error("a span for an unsampled request")
		}
		upstream = out.Header.Get("Traceparent")
		if _, sp := StartAgent(r.Context(), "a", "request_headers"); sp != nil {
			t.Error("an agent span for an unsampled request")
		}
		agent = Traceparent(r.Context(), "client's")
		return nil
	})
	if len(sr.Ended()) != 0 {
		t.Errorf("spans: %v", sr.Ended())
	}
	if !strings.HasSuffix(upstream, "-00") || upstream != agent {
		t.Errorf("upstream %q, agent %q: want the same unsampled traceparent", upstream, agent)
	}
	if got := Traceparent(context.Background(), "client's"); got != "client's" {
		t.Errorf("fallback: %q", got)
	}
	// No span in the context at all (tracing off).
	out := httptest.NewRequest("GET", "http://backend/", nil)
	if StartUpstream(out, "x", 1) != nil || out.Header.Get("Traceparent") != "" {
		t.Error("tracing off: a span or a traceparent")
	}
}

func TestHookSpans(t *testing.T) {
	sr, tr := recorder(t, sdktrace.AlwaysSample())
	ctx, root := tr.Start(context.Background(), "root")
	req := httptest.NewRequest("GET", "http://b/p", nil).WithContext(ctx)
	req.Header.Set("Tracestate", "client=1")
	sp := StartUpstream(req, "10.0.0.1:80", 1)
	if req.Header.Get("Tracestate") != "" {
		t.Errorf("the client's tracestate went on without its traceparent")
	}
	EndUpstream(sp, &http.Response{StatusCode: 503}, nil)
	EndUpstream(StartUpstream(req, "[::1]:81", 2), nil, reverseproxy.NewDialError(errors.New("refused")))
	EndUpstream(StartUpstream(req, "u", 3), nil, &net.OpError{Op: "read", Err: timeoutErr{}})
	EndUpstream(StartUpstream(req, "u", 4), nil, context.Canceled)
	EndUpstream(StartUpstream(req, "u", 5), nil, errors.New("other"))
	actx, asp := StartAgent(ctx, "waf", "request_headers")
	if tp := Traceparent(actx, ""); !strings.Contains(tp, asp.SpanContext().SpanID().String()) {
		t.Errorf("agent traceparent %q", tp)
	}
	EndAgent(asp, "block", nil)
	_, asp = StartAgent(ctx, "waf", "request_body_chunk")
	EndAgent(asp, "", errors.New("agent down"))
	root.End()
	at := byName(sr, "upstream.attempt")
	want := []string{"503", "connect", "timeout", "canceled", "transport"}
	if len(at) != len(want) {
		t.Fatalf("attempts: %v", at)
	}
	for i, s := range at {
		if got := attrs(s)["error.type"]; got != want[i] || s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("attempt %d: error.type %q, want %q", i+1, got, want[i])
		}
	}
	if a := attrs(at[0]); a["server.address"] != "10.0.0.1" || a["server.port"] != "80" || a["http.response.status_code"] != "503" {
		t.Errorf("attempt 1: %v", a)
	}
	if !strings.HasPrefix(req.Header.Get("Traceparent"), "00-"+root.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q", req.Header.Get("Traceparent"))
	}
	ag := byName(sr, "agent waf")
	if len(ag) != 2 || attrs(ag[0])["sentinel.agent.decision"] != "block" || attrs(ag[1])["error.type"] != "transport" {
		t.Errorf("agent spans: %v %v", attrs(ag[0]), attrs(ag[1]))
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestWrapPlugin(t *testing.T) {
	sr, tr := recorder(t, sdktrace.AlwaysSample())
	var reached int
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		// The handlers after the plugin are not its children.
		if trace.SpanFromContext(r.Context()).(sdktrace.ReadOnlySpan).Name() != "root" {
			t.Error("the plugin's span is the current span after it")
		}
	})
	stage := WrapPlugin("p", "sentinel", next, func(n http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				w.WriteHeader(403)
				return
			}
			n.ServeHTTP(w, r)
		})
	})
	ctx, root := tr.Start(context.Background(), "root")
	for _, p := range []string{"/ok", "/block"} {
		stage.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://h"+p, nil).WithContext(ctx))
	}
	root.End()
	// Not traced: the stage runs alone.
	stage.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://h/ok", nil).WithContext(trace.ContextWithSpan(context.Background(), root)))
	s := byName(sr, "wasm p")
	if len(s) != 2 || attrs(s[0])["sentinel.plugin.decision"] != "allow" || attrs(s[1])["sentinel.plugin.decision"] != "block" || reached != 2 {
		t.Fatalf("plugin spans: %d, reached %d", len(s), reached)
	}
}

// pick is a selection policy that picks the first upstream, if any.
type pick struct{}

func (pick) Select(p reverseproxy.UpstreamPool, _ *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	if len(p) == 0 {
		return nil
	}
	return p[0]
}

func TestSelection(t *testing.T) {
	sr, tr := recorder(t, sdktrace.AlwaysSample())
	s := &Selection{inner: pick{}, policy: "p"}
	ctx, root := tr.Start(context.Background(), "root")
	r := httptest.NewRequest("GET", "http://h/", nil).WithContext(ctx)
	pool := reverseproxy.UpstreamPool{{Dial: "10.0.0.1:80"}, {Dial: "10.0.0.2:80"}}
	if u := s.Select(pool, r, nil); u != pool[0] {
		t.Fatal(u)
	}
	if u := s.Select(nil, r, nil); u != nil {
		t.Fatal(u)
	}
	if u := s.Select(pool, httptest.NewRequest("GET", "http://h/", nil), nil); u != pool[0] {
		t.Fatal(u)
	}
	root.End()
	sel := byName(sr, "upstream.select")
	if len(sel) != 2 || attrs(sel[0])["sentinel.upstream.address"] != "10.0.0.1:80" || attrs(sel[0])["sentinel.lb.candidates"] != "2" || sel[1].Status().Code.String() != "Error" {
		t.Fatalf("selection spans: %v", sel)
	}
	if got := policyName([]byte(`{"policy":"sentinel_untried","inner":{"policy":"cookie"}}`)); got != "cookie" {
		t.Errorf("policyName: %q", got)
	}
}

func TestSelectionProvision(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := new(Selection)
	if err := s.Provision(ctx); err != nil || s.policy != "random" {
		t.Fatalf("default: %v %q", err, s.policy)
	}
	s = &Selection{InnerRaw: []byte(`{"policy":"nope"}`)}
	if err := s.Provision(ctx); err == nil || !strings.Contains(err.Error(), "inner selection policy") {
		t.Errorf("unknown inner: %v", err)
	}
}
