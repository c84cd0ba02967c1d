package translate

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	pb "sigs.k8s.io/gateway-api/conformance/echo-basic/grpcechoserver"
)

// grpcEcho is a real gRPC server (the suite's echo service) answering
// its name in the pod field, and the metadata it got in the headers.
type grpcEcho struct {
	pb.UnimplementedGrpcEchoServer
	name string
}

func (g *grpcEcho) Echo(ctx context.Context, _ *pb.EchoRequest) (*pb.EchoResponse, error) {
	return g.answer(ctx), nil
}

func (g *grpcEcho) EchoTwo(ctx context.Context, _ *pb.EchoRequest) (*pb.EchoResponse, error) {
	return g.answer(ctx), nil
}

func (g *grpcEcho) answer(ctx context.Context) *pb.EchoResponse {
	md, _ := metadata.FromIncomingContext(ctx)
	resp := &pb.EchoResponse{Assertions: &pb.Assertions{Context: &pb.Context{Pod: g.name}, Headers: nil}}
	for k, vs := range md {
		for _, v := range vs {
			resp.Assertions.Headers = append(resp.Assertions.Headers, &pb.Header{Key: k, Value: v})
		}
	}
	return resp
}

// grpcBackend starts a real gRPC server (cleartext HTTP/2) as the only
// endpoint of Service gw/name port 8080.
func grpcBackend(t *testing.T, in *Input, name string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterGrpcEchoServer(srv, &grpcEcho{name: name})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	port32, pname, ready := int32(ln.Addr().(*net.TCPAddr).Port), "http", true
	key := types.NamespacedName{Namespace: "gw", Name: name}
	in.Services[key] = in.Services[types.NamespacedName{Namespace: "gw", Name: "local"}].DeepCopy()
	in.Services[key].Name = name
	in.EndpointSlices[key] = []*discoveryv1.EndpointSlice{{
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:     []discoveryv1.EndpointPort{{Name: &pname, Port: &port32}},
	}}
}

func grpcRoute(name string, rules ...gwv1.GRPCRouteRule) *gwv1.GRPCRoute {
	return &gwv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: name, Generation: 4}, Spec: gwv1.GRPCRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
		Rules:           rules,
	}}
}

func grpcRef(name string, weight int32) gwv1.GRPCBackendRef {
	port := gwv1.PortNumber(8080)
	return gwv1.GRPCBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port}, Weight: &weight}}
}

const echoService = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"

// TestGRPCRoute: GRPCRoutes through a real Caddy to real gRPC servers
// over h2c: exact service and method, a regular expression, a header
// match, a request header filter, a 3:1 weighted split, Unimplemented
// for a call no rule matches; and the status (per kind: an HTTPRoute of
// the same name keeps its own).
func TestGRPCRoute(t *testing.T) {
	in := base()
	for _, n := range []string{"v1", "v2", "v3"} {
		grpcBackend(t, in, n)
	}
	svc, echo := echoService, "Echo"
	re := gwv1.GRPCMethodMatchRegularExpression
	in.GRPCRoutes = []*gwv1.GRPCRoute{grpcRoute("g",
		gwv1.GRPCRouteRule{
			Matches:     []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: &svc, Method: &echo}, Headers: []gwv1.GRPCHeaderMatch{{Name: "version", Value: "three"}}}},
			BackendRefs: []gwv1.GRPCBackendRef{grpcRef("v3", 1)},
		},
		gwv1.GRPCRouteRule{
			Matches: []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: &svc, Method: &echo}}},
			Filters: []gwv1.GRPCRouteFilter{{Type: gwv1.GRPCRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
				Set: []gwv1.HTTPHeader{{Name: "x-from", Value: "gateway"}},
			}}},
			BackendRefs: []gwv1.GRPCBackendRef{grpcRef("v1", 3), grpcRef("v2", 1)},
		},
		gwv1.GRPCRouteRule{
			Matches:     []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Type: &re, Service: ptr(`gateway_api_conformance\..*`), Method: ptr("Echo(Two)?")}}},
			BackendRefs: []gwv1.GRPCBackendRef{grpcRef("v2", 1)},
		},
	)}
	in.Routes = []*gwv1.HTTPRoute{route("gw", "g", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, "/http-only")}}, BackendRefs: []gwv1.HTTPBackendRef{ref("", "missing", 8080)}})}
	url := serve(t, in)
	cc, err := grpc.NewClient(strings.TrimPrefix(url, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := pb.NewGrpcEchoClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func(f func(context.Context, *pb.EchoRequest, ...grpc.CallOption) (*pb.EchoResponse, error), md ...string) (*pb.EchoResponse, error) {
		return f(metadata.AppendToOutgoingContext(ctx, md...), &pb.EchoRequest{})
	}
	pods := map[string]int{}
	for range 8 {
		resp, err := call(client.Echo)
		if err != nil {
			t.Fatalf("Echo: %v", err)
		}
		pods[resp.GetAssertions().GetContext().GetPod()]++
		found := false
		for _, h := range resp.GetAssertions().GetHeaders() {
			found = found || h.Key == "x-from" && h.Value == "gateway"
		}
		if !found {
			t.Errorf("Echo: the backend lacks x-from: %v", resp.GetAssertions().GetHeaders())
		}
	}
	if pods["v1"] != 6 || pods["v2"] != 2 {
		t.Errorf("Echo split %v, want v1 6, v2 2", pods)
	}
	if resp, err := call(client.Echo, "version", "three"); err != nil || resp.GetAssertions().GetContext().GetPod() != "v3" {
		t.Errorf("Echo with version: three: %v %v, want v3", resp, err)
	}
	if resp, err := call(client.EchoTwo); err != nil || resp.GetAssertions().GetContext().GetPod() != "v2" {
		t.Errorf("EchoTwo (regular expression): %v %v, want v2", resp, err)
	}
	if _, err := call(client.EchoThree); grpcstatus.Code(err) != codes.Unimplemented {
		t.Errorf("EchoThree: %v, want Unimplemented", err)
	}

	out, _ := Translate(in)
	g := out.GRPCRouteParents[types.NamespacedName{Namespace: "gw", Name: "g"}]
	if len(g) != 1 || conds(g[0].Conditions) != "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs" || g[0].Conditions[0].ObservedGeneration != 4 {
		t.Errorf("GRPCRoute status %+v", g)
	}
	h := out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "g"}]
	if len(h) != 1 || !strings.Contains(conds(h[0].Conditions), "ResolvedRefs=False/BackendNotFound") {
		t.Errorf("HTTPRoute status %+v", h)
	}
	if got := out.Listeners[0].SupportedKinds; len(got) != 2 || got[1].Kind != "GRPCRoute" {
		t.Errorf("supportedKinds %v", got)
	}
}

// TestGRPCRouteKindsAndGrants: a listener allowing only HTTPRoutes
// refuses a GRPCRoute (NotAllowedByListeners), and a cross-namespace
// backend needs a ReferenceGrant from GRPCRoute (one from HTTPRoute does
// not do).
func TestGRPCRouteKindsAndGrants(t *testing.T) {
	in := base()
	in.Gateway.Spec.Listeners[0].AllowedRoutes.Kinds = []gwv1.RouteGroupKind{{Kind: "HTTPRoute"}}
	in.GRPCRoutes = []*gwv1.GRPCRoute{grpcRoute("g", gwv1.GRPCRouteRule{BackendRefs: []gwv1.GRPCBackendRef{grpcRef("local", 1)}})}
	out, _ := Translate(in)
	if c := conds(out.GRPCRouteParents[types.NamespacedName{Namespace: "gw", Name: "g"}][0].Conditions); !strings.HasPrefix(c, "Accepted=False/NotAllowedByListeners") {
		t.Errorf("HTTPRoute-only listener: %s", c)
	}
	in = base()
	r := grpcRef("web", 1)
	r.Namespace = ptr(gwv1.Namespace("app"))
	in.GRPCRoutes = []*gwv1.GRPCRoute{grpcRoute("g", gwv1.GRPCRouteRule{BackendRefs: []gwv1.GRPCBackendRef{r}})}
	grant := func(kind gwv1.Kind) []*gwv1.ReferenceGrant {
		return []*gwv1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Namespace: "app"}, Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: kind, Namespace: "gw"}},
			To:   []gwv1.ReferenceGrantTo{{Kind: "Service"}},
		}}}
	}
	for kind, want := range map[gwv1.Kind]string{"HTTPRoute": "ResolvedRefs=False/RefNotPermitted", "GRPCRoute": "ResolvedRefs=True/ResolvedRefs"} {
		in.Grants = grant(kind)
		out, _ := Translate(in)
		if c := conds(out.GRPCRouteParents[types.NamespacedName{Namespace: "gw", Name: "g"}][0].Conditions); !strings.HasSuffix(c, want) {
			t.Errorf("grant from %s: %s, want %s", kind, c, want)
		}
		if kind == "GRPCRoute" && !strings.Contains(string(out.Config), `"versions":["h2c","2"]`) {
			t.Errorf("gRPC backend without h2c: %s", out.Config)
		}
	}
	// Method matches as paths.
	svc, m := "pkg.Svc", "Get"
	for _, c := range []struct {
		mm   gwv1.GRPCMethodMatch
		want string
	}{
		{gwv1.GRPCMethodMatch{Service: &svc, Method: &m}, "Exact /pkg.Svc/Get"},
		{gwv1.GRPCMethodMatch{Service: &svc}, "PathPrefix /pkg.Svc"},
		{gwv1.GRPCMethodMatch{Method: &m}, `RegularExpression /[^/]+/Get`},
	} {
		p := grpcPath(&c.mm)
		if got := string(*p.Type) + " " + *p.Value; got != c.want {
			t.Errorf("%v: %s, want %s", c.mm, got, c.want)
		}
	}
	if grpcPath(nil) != nil {
		t.Error("no method match is not any path")
	}
}
