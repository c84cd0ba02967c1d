package controller_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	pb "sigs.k8s.io/gateway-api/conformance/echo-basic/grpcechoserver"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// grpcEcho is a real gRPC server of the suite's echo service answering
// its name.
type grpcEcho struct {
	pb.UnimplementedGrpcEchoServer
	name string
}

func (g *grpcEcho) Echo(context.Context, *pb.EchoRequest) (*pb.EchoResponse, error) {
	return &pb.EchoResponse{Assertions: &pb.Assertions{Context: &pb.Context{Pod: g.name}}}, nil
}

func grpcServer(t *testing.T, host, name string) int32 {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterGrpcEchoServer(s, &grpcEcho{name: name})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// TestGRPCRouteEndToEnd: a GRPCRoute in a real kube-apiserver becomes
// the config of a running Sentinel replica, which proxies gRPC calls
// (h2c from the client, h2c to the backend) by service and method; the
// route's status is written (Accepted, ResolvedRefs, observedGeneration)
// and the listener counts it and lists GRPCRoute among its kinds; the
// Gateway's deletion removes the entries.
func TestGRPCRouteEndToEnd(t *testing.T) {
	c := start(t)
	ip := endpointIP(t)
	ctx := context.Background()
	class(t, c)
	mkns(t, c, "grpc")
	service(t, c, "grpc", "g1", ip, grpcServer(t, ip, "g1"))

	port := int32(testutil.FreePort(t))
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "grpc", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "sentinel",
		Listeners:        []gwv1.Listener{{Name: "http", Port: port, Protocol: gwv1.HTTPProtocolType}},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	rt := &gwv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "grpc", Name: "echo"}, Spec: gwv1.GRPCRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
		Rules: []gwv1.GRPCRouteRule{{
			Matches:     []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: ptr.To("gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"), Method: ptr.To("Echo")}}},
			BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "g1", Port: ptr.To[int32](8080)}}}},
		}},
	}}
	if err := c.Create(ctx, rt); err != nil {
		t.Fatal(err)
	}
	var addr string
	eventually(t, 30*time.Second, func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if s := condOf(g.Status.Conditions, "Programmed"); s != "Programmed=True/Programmed" || len(g.Status.Addresses) != 1 {
			return "Gateway " + s
		}
		l := g.Status.Listeners[0]
		if l.AttachedRoutes != 1 || len(l.SupportedKinds) != 2 || l.SupportedKinds[1].Kind != "GRPCRoute" {
			return fmt.Sprintf("listener %+v", l)
		}
		addr = net.JoinHostPort(g.Status.Addresses[0].Value, strconv.Itoa(int(port)))
		return ""
	})
	eventually(t, 10*time.Second, func() string {
		var r gwv1.GRPCRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(rt), &r); err != nil {
			return err.Error()
		}
		if len(r.Status.Parents) != 1 {
			return fmt.Sprintf("parents %+v", r.Status.Parents)
		}
		p := r.Status.Parents[0]
		if got := condOf(p.Conditions, "Accepted") + " " + condOf(p.Conditions, "ResolvedRefs"); got != "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs" || p.ControllerName != controller.DefaultControllerName {
			return "route " + got
		}
		if p.Conditions[0].ObservedGeneration != r.Generation {
			return "observedGeneration"
		}
		return ""
	})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	eventually(t, 10*time.Second, func() string {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := pb.NewGrpcEchoClient(cc).Echo(cctx, &pb.EchoRequest{})
		if err != nil {
			return err.Error()
		}
		if pod := resp.GetAssertions().GetContext().GetPod(); pod != "g1" {
			return "answered by " + pod
		}
		return ""
	})
	if err := c.Delete(ctx, gw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		var r gwv1.GRPCRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(rt), &r); err != nil {
			return err.Error()
		}
		if len(r.Status.Parents) != 0 {
			return fmt.Sprintf("parents after the Gateway's deletion: %+v", r.Status.Parents)
		}
		return ""
	})
}
