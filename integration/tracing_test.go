package integration

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// ---------------------------------------------------------------- OTLP receiver

// gotSpan is a span as an OTLP receiver got it.
type gotSpan struct {
	service                 string
	traceID, spanID, parent string
	name                    string
	kind                    tracepb.Span_SpanKind
	attrs                   map[string]string
	statusCode              tracepb.Status_StatusCode
	start                   uint64
}

// otlpReceiver is an in-process OTLP collector: a gRPC TraceService and
// an HTTP handler of /v1/traces (protobuf), recording the spans.
type otlpReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []gotSpan
}

// Export records the spans of an OTLP/gRPC export.
func (o *otlpReceiver) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	o.add(req)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// ServeHTTP records the spans of an OTLP/HTTP export.
func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.add(&req)
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpReceiver) add(req *coltrace.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrMap(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, gotSpan{
					service: service, traceID: hex.EncodeToString(s.GetTraceId()), spanID: hex.EncodeToString(s.GetSpanId()),
					parent: hex.EncodeToString(s.GetParentSpanId()), name: s.GetName(), kind: s.GetKind(),
					attrs: attrMap(s.GetAttributes()), statusCode: s.GetStatus().GetCode(), start: s.GetStartTimeUnixNano(),
				})
			}
		}
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		}
	}
	return m
}

// trace returns the spans of a trace, in start order.
func (o *otlpReceiver) trace(id string) []gotSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []gotSpan
	for _, s := range o.spans {
		if s.traceID == id {
			out = append(out, s)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].start < out[j-1].start; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (o *otlpReceiver) all() []gotSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]gotSpan(nil), o.spans...)
}

// startGRPCReceiver serves an OTLP/gRPC receiver until the test ends.
func startGRPCReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	o := new(otlpReceiver)
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, o)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return o, ln.Addr().String()
}

// startHTTPReceiver serves an OTLP/HTTP receiver until the test ends.
func startHTTPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	o := new(otlpReceiver)
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return o, ln.Addr().String()
}

// ---------------------------------------------------------------- peers

// tpBackend is an upstream that records the traceparent of each path.
type tpBackend struct {
	addr string
	mu   sync.Mutex
	tps  map[string]string
}

func startTPBackend(t *testing.T) *tpBackend {
	t.Helper()
	b := &tpBackend{tps: map[string]string{}}
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.tps[r.URL.Path] = r.Header.Get("Traceparent")
		b.mu.Unlock()
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

func (b *tpBackend) traceparent(path string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tps[path]
}

// tpAgent is an agent that allows everything and records the
// traceparent of each request's metadata, by path.
type tpAgent struct {
	sdk.Base
	mu  sync.Mutex
	tps map[string]string
}

func (a *tpAgent) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	a.mu.Lock()
	path, _, _ := strings.Cut(ev.URI, "?")
	a.tps[path] = ev.Metadata.Traceparent
	a.mu.Unlock()
	return &protocol.Response{}
}

func (a *tpAgent) traceparent(uri string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tps[uri]
}

// buildWASMPlugin builds examples/plugins/<name> for wasip1.
func buildWASMPlugin(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, "./examples/plugins/"+name)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	return out
}

// traceparentParts splits a W3C traceparent: trace id, parent id, flags.
func traceparentParts(t *testing.T, tp string) (string, string, string) {
	t.Helper()
	p := strings.Split(tp, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 {
		t.Fatalf("traceparent %q is not W3C", tp)
	}
	return p[1], p[2], p[3]
}

// ---------------------------------------------------------------- tests

// TestTracingSpanTree sends requests through the real proxy with
// tracing on (OTLP/gRPC): an agent on a Unix socket, a WASM plugin, and
// an upstream of a dead and a live target with a retry. The receiver
// gets the tree: the server span (named for the route), the agent call
// and the plugin, one selection and one client span per attempt (the
// first failing, the retry to the live target); the backend and the
// agent get traceparents of the same trace whose parents are the
// attempt's and the agent call's spans.
func TestTracingSpanTree(t *testing.T) {
	recv, otlpAddr := startGRPCReceiver(t)
	live := startTPBackend(t)
	dead := testutil.FreeAddr(t) // nothing listens: connection refused
	agent := &tpAgent{tps: map[string]string{}}
	sock := runUDSAgent(t, agent)
	grpcAgent := &tpAgent{tps: map[string]string{}}
	grpcAddr := runGRPCAgent(t, grpcAgent)
	plugin := buildWASMPlugin(t, "pathallow")
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "main" { address "%s"; } }
observability {
    tracing {
        backend "otlp" { endpoint "http://%s"; protocol "grpc"; }
        sampling-rate 1.0
        service-name "it-sentinel"
    }
}
agents {
    agent "guard" { unix-socket %q; timeout-ms 5000; }
    agent "remote" { grpc "http://%s"; timeout-ms 5000; }
}
plugins { plugin "paths" { path %q; config { allow "/r" "/x"; } } }
filters {
    filter "guard" { type "agent"; agent "guard"; }
    filter "remote" { type "agent"; agent "remote"; }
    filter "paths" { type "wasm"; plugin "paths"; }
}
routes {
    route "api" {
        matches { path-prefix "/"; }
        upstream "pool"
        filters "guard" "remote" "paths"
        retry-policy { max-attempts 2; }
    }
}
upstreams {
    upstream "pool" {
        target "%s"
        target "%s"
        load-balancing "round_robin"
    }
}
`, listen, otlpAddr, sock, grpcAddr, plugin, dead, live.addr))

	c := client()
	const secret = "Bearer s3cr3t-token-value"
	for i := range 4 {
		status, body, _ := get(t, c, "GET", fmt.Sprintf("http://%s/r/%d?token=q5ecret", listen, i), map[string]string{"Authorization": secret, "Cookie": "sid=c00kie"})
		if status != 200 || body != fmt.Sprintf("ok /r/%d", i) {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
	// A client's sampled traceparent: the request's span is its child.
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if status, _, _ := get(t, c, "GET", "http://"+listen+"/x/parent", map[string]string{"Traceparent": "00-" + clientTrace + "-" + clientSpan + "-01"}); status != 200 {
		t.Fatalf("request with a traceparent: %d", status)
	}
	// The plugin blocks this one: no upstream span.
	if status, _, _ := get(t, c, "GET", "http://"+listen+"/blocked", nil); status != 403 {
		t.Fatalf("blocked request: %d", status)
	}

	// The trace of a retried request.
	var retried []gotSpan
	var retriedPath string
	eventually(t, "spans of a retried request", func() bool {
		for i := range 4 {
			path := fmt.Sprintf("/r/%d", i)
			tp := live.traceparent(path)
			if tp == "" {
				continue
			}
			id, _, _ := traceparentParts(t, tp)
			spans := recv.trace(id)
			n := 0
			for _, s := range spans {
				if s.name == "upstream.attempt" {
					n++
				}
			}
			if n == 2 && len(spans) == 8 {
				retried, retriedPath = spans, path
				return true
			}
		}
		return false
	})
	byName := map[string][]gotSpan{}
	for _, s := range retried {
		byName[s.name] = append(byName[s.name], s)
	}
	if len(byName["GET api"]) != 1 {
		t.Fatalf("server span: %+v", retried)
	}
	root := byName["GET api"][0]
	if root.parent != "" || root.kind != tracepb.Span_SPAN_KIND_SERVER || root.service != "it-sentinel" {
		t.Errorf("server span: parent %q kind %v service %q", root.parent, root.kind, root.service)
	}
	for k, v := range map[string]string{"http.route": "api", "sentinel.route.id": "api", "http.request.method": "GET", "url.path": retriedPath, "http.response.status_code": "200"} {
		if root.attrs[k] != v {
			t.Errorf("server span %s = %q, want %q (%v)", k, root.attrs[k], v, root.attrs)
		}
	}
	for _, name := range []string{"agent guard", "agent remote", "wasm paths", "upstream.select", "upstream.attempt"} {
		for _, s := range byName[name] {
			if s.parent != root.spanID {
				t.Errorf("%s: parent %s, want the server span %s", name, s.parent, root.spanID)
			}
		}
	}
	ag := byName["agent guard"]
	if len(ag) != 1 || ag[0].kind != tracepb.Span_SPAN_KIND_CLIENT || ag[0].attrs["sentinel.agent.name"] != "guard" ||
		ag[0].attrs["sentinel.agent.event"] != "request_headers" || ag[0].attrs["sentinel.agent.decision"] != "allow" {
		t.Errorf("agent spans: %+v", ag)
	}
	wp := byName["wasm paths"]
	if len(wp) != 1 || wp[0].attrs["sentinel.plugin.name"] != "paths" || wp[0].attrs["sentinel.plugin.decision"] != "allow" || wp[0].attrs["sentinel.plugin.abi"] != "sentinel" {
		t.Errorf("plugin spans: %+v", wp)
	}
	sel := byName["upstream.select"]
	if len(sel) != 2 || sel[0].attrs["sentinel.upstream.address"] != dead || sel[1].attrs["sentinel.upstream.address"] != live.addr ||
		sel[0].attrs["sentinel.lb.policy"] != "round_robin" || sel[0].attrs["sentinel.lb.candidates"] != "2" {
		t.Errorf("selection spans: %+v", sel)
	}
	at := byName["upstream.attempt"]
	if len(at) != 2 {
		t.Fatalf("attempt spans: %+v", at)
	}
	if a := at[0]; a.kind != tracepb.Span_SPAN_KIND_CLIENT || a.attrs["sentinel.upstream.address"] != dead || a.attrs["sentinel.upstream.attempt"] != "1" ||
		a.statusCode != tracepb.Status_STATUS_CODE_ERROR || a.attrs["error.type"] != "connect" {
		t.Errorf("first attempt: %+v", a)
	}
	if a := at[1]; a.attrs["sentinel.upstream.address"] != live.addr || a.attrs["sentinel.upstream.attempt"] != "2" ||
		a.attrs["http.response.status_code"] != "200" || a.statusCode == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("second attempt: %+v", a)
	}
	// What the backend and the agent got: the same trace, parented by
	// the attempt that reached the backend and by the agent call.
	_, parent, flags := traceparentParts(t, live.traceparent(retriedPath))
	if parent != at[1].spanID || flags != "01" {
		t.Errorf("backend's traceparent parent %s flags %s, want the second attempt %s, sampled", parent, flags, at[1].spanID)
	}
	tid, parent, _ := traceparentParts(t, agent.traceparent(retriedPath))
	if tid != root.traceID || parent != ag[0].spanID {
		t.Errorf("agent's traceparent %s/%s, want trace %s, parent the agent span %s", tid, parent, root.traceID, ag[0].spanID)
	}
	// The same over gRPC.
	rg := byName["agent remote"]
	if len(rg) != 1 || rg[0].attrs["sentinel.agent.decision"] != "allow" {
		t.Fatalf("gRPC agent spans: %+v", rg)
	}
	tid, parent, _ = traceparentParts(t, grpcAgent.traceparent(retriedPath))
	if tid != root.traceID || parent != rg[0].spanID {
		t.Errorf("gRPC agent's traceparent %s/%s, want trace %s, parent the agent span %s", tid, parent, root.traceID, rg[0].spanID)
	}

	// The client's traceparent: same trace, the server span its child.
	eventually(t, "spans of the request with a traceparent", func() bool {
		for _, s := range recv.trace(clientTrace) {
			if s.name == "GET api" {
				return s.parent == clientSpan
			}
		}
		return false
	})
	if tid, _, _ := traceparentParts(t, live.traceparent("/x/parent")); tid != clientTrace {
		t.Errorf("backend's trace %s, want the client's %s", tid, clientTrace)
	}

	// The blocked request: the plugin's span says block, no attempt.
	eventually(t, "spans of the blocked request", func() bool {
		for _, s := range recv.all() {
			if s.name == "GET api" && s.attrs["url.path"] == "/blocked" {
				spans := recv.trace(s.traceID)
				var names []string
				for _, x := range spans {
					names = append(names, x.name)
					if x.name == "wasm paths" && x.attrs["sentinel.plugin.decision"] != "block" {
						t.Errorf("blocked request's plugin span: %+v", x)
					}
				}
				if strings.Contains(strings.Join(names, ","), "upstream") || s.attrs["http.response.status_code"] != "403" {
					t.Errorf("blocked request: spans %v, status %s", names, s.attrs["http.response.status_code"])
				}
				return len(spans) == 4
			}
		}
		return false
	})

	// No header value, query or secret in any attribute.
	for _, s := range recv.all() {
		for k, v := range s.attrs {
			if strings.Contains(v, "s3cr3t") || strings.Contains(v, "c00kie") || strings.Contains(v, "q5ecret") {
				t.Errorf("span %s attribute %s = %q carries a secret", s.name, k, v)
			}
		}
	}
}

// TestTracingHTTPExportAndSampling exports over OTLP/HTTP with a
// sampling rate of 0: a request without a traceparent is not traced but
// the backend still gets the proxy's (unsampled) traceparent; a request
// whose client sampled it is traced (parent-based).
func TestTracingHTTPExportAndSampling(t *testing.T) {
	recv, otlpAddr := startHTTPReceiver(t)
	live := startTPBackend(t)
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "main" { address "%s"; } }
observability {
    tracing {
        backend "otlp" { endpoint "http://%s"; protocol "http"; }
        sampling-rate 0.0
    }
}
routes { route "web" { matches { path-prefix "/"; }; upstream "one"; } }
upstreams { upstream "one" { target "%s"; } }
`, listen, otlpAddr, live.addr))
	c := client()
	if status, _, _ := get(t, c, "GET", "http://"+listen+"/unsampled", nil); status != 200 {
		t.Fatalf("status %d", status)
	}
	tid, _, flags := traceparentParts(t, live.traceparent("/unsampled"))
	if flags != "00" {
		t.Errorf("unsampled request's traceparent flags %s, want 00", flags)
	}
	const clientTrace = "0af7651916cd43dd8448eb211c80319c"
	if status, _, _ := get(t, c, "GET", "http://"+listen+"/sampled", map[string]string{"Traceparent": "00-" + clientTrace + "-b7ad6b7169203331-01"}); status != 200 {
		t.Fatalf("status %d", status)
	}
	eventually(t, "spans over OTLP/HTTP", func() bool {
		var names []string
		for _, s := range recv.trace(clientTrace) {
			names = append(names, s.name)
			if s.service != "sentinel" {
				t.Errorf("service.name %q, want the default sentinel", s.service)
			}
		}
		return strings.Join(names, ",") == "GET web,upstream.select,upstream.attempt"
	})
	if got := recv.trace(tid); len(got) != 0 {
		t.Errorf("the unsampled request was exported: %+v", got)
	}
}
