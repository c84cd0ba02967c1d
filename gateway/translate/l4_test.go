package translate

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	_ "github.com/sentinel-proxy/sentinel/gateway/l4"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// publish makes addr (a real server) the only ready endpoint of Service
// ns/name, port 9000.
func publish(in *Input, ns, name, addr string) {
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	port32, ready := int32(port), true
	key := types.NamespacedName{Namespace: ns, Name: name}
	in.Services[key] = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 9000}}}}
	in.EndpointSlices[key] = []*discoveryv1.EndpointSlice{{
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:     []discoveryv1.EndpointPort{{Port: &port32}},
	}}
}

// tlsServer is a real TLS server for names answering answer.
func tlsServer(t *testing.T, answer string, names ...string) (string, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := testutil.CertPEM(names...)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveLines(ln, answer)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return ln.Addr().String(), pool
}

func tcpServer(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveLines(ln, answer)
	return ln.Addr().String()
}

// serveLines answers each connection's first line with answer and it.
func serveLines(ln net.Listener, answer string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			line, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "%s %s", answer, line)
		}()
	}
}

func l4Ref(ns, name string, weight int32) gwv1.BackendRef {
	port := gwv1.PortNumber(9000)
	r := gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port}, Weight: &weight}
	if ns != "" {
		r.Namespace = ptr(gwv1.Namespace(ns))
	}
	return r
}

func tlsRoute(name string, hosts []gwv1.Hostname, refs ...gwv1.BackendRef) *gwv1.TLSRoute {
	return &gwv1.TLSRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Generation: 4}, Spec: gwv1.TLSRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", Namespace: ptr(gwv1.Namespace("gw"))}}},
		Hostnames:       hosts,
		Rules:           []gwv1.TLSRouteRule{{BackendRefs: refs}},
	}}
}

// TestTLSRouteAndTCPRoute: TLSRoutes pass TLS through by SNI to real TLS
// servers (their own certificates verify at the client), TCPRoutes
// splice by weight, and the statuses carry the spec's reasons.
func TestTLSRouteAndTCPRoute(t *testing.T) {
	in := base()
	tlsPort, tcpPort := testutil.FreePort(t), testutil.FreePort(t)
	all := gwv1.NamespacesFromAll
	passthrough, terminate := gwv1.TLSModePassthrough, gwv1.TLSModeTerminate
	allowed := &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}}
	in.Gateway.Spec.Listeners = []gwv1.Listener{
		{Name: "tls", Port: gwv1.PortNumber(tlsPort), Protocol: gwv1.TLSProtocolType, Hostname: hn("*.example.com"), TLS: &gwv1.ListenerTLSConfig{Mode: &passthrough}, AllowedRoutes: allowed},
		{Name: "tcp", Port: gwv1.PortNumber(tcpPort), Protocol: gwv1.TCPProtocolType, AllowedRoutes: allowed},
		{Name: "tls-terminate", Port: 9443, Protocol: gwv1.TLSProtocolType, TLS: &gwv1.ListenerTLSConfig{Mode: &terminate}, AllowedRoutes: allowed},
		{Name: "tls-http-kind", Port: 9444, Protocol: gwv1.TLSProtocolType, TLS: &gwv1.ListenerTLSConfig{Mode: &passthrough},
			AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}, Kinds: []gwv1.RouteGroupKind{{Kind: "HTTPRoute"}}}},
	}
	in.BindHost = "127.0.0.1"
	addrA, poolA := tlsServer(t, "A", "a.example.com")
	addrW, poolW := tlsServer(t, "W", "x.wild.example.com")
	publish(in, "app", "a", addrA)
	publish(in, "app", "w", addrW)
	publish(in, "other", "private", addrA)
	publish(in, "app", "t1", tcpServer(t, "t1"))
	publish(in, "app", "t2", tcpServer(t, "t2"))
	in.TLSRoutes = []*gwv1.TLSRoute{
		tlsRoute("a", []gwv1.Hostname{"a.example.com"}, l4Ref("", "a", 1)),
		tlsRoute("wild", []gwv1.Hostname{"*.wild.example.com"}, l4Ref("", "w", 1)),
		tlsRoute("elsewhere", []gwv1.Hostname{"a.example.org"}, l4Ref("", "a", 1)),
		tlsRoute("cross", []gwv1.Hostname{"cross.example.com"}, l4Ref("other", "private", 1)),
		tlsRoute("missing", []gwv1.Hostname{"missing.example.com"}, l4Ref("", "nope", 1)),
	}
	in.TCPRoutes = []*gwv1.TCPRoute{{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db", Generation: 1}, Spec: gwv1.TCPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", Namespace: ptr(gwv1.Namespace("gw")), SectionName: ptr(gwv1.SectionName("tcp"))}}},
		Rules:           []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{l4Ref("", "t1", 3), l4Ref("", "t2", 1)}}},
	}}}
	// An HTTPRoute on the TLS listener is not allowed there.
	in.Routes = []*gwv1.HTTPRoute{route("app", "web", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("", "web", 8080)}})}
	in.Routes[0].Spec.ParentRefs[0].SectionName = ptr(gwv1.SectionName("tls"))

	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	// Statuses.
	want := map[string]string{
		"a":         "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
		"wild":      "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
		"elsewhere": "Accepted=False/NoMatchingListenerHostname ResolvedRefs=True/ResolvedRefs",
		"cross":     "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted",
		"missing":   "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound",
	}
	for name, w := range want {
		ps := out.TLSRouteParents[types.NamespacedName{Namespace: "app", Name: name}]
		if len(ps) != 1 || conds(ps[0].Conditions) != w {
			t.Errorf("TLSRoute %s: %+v, want %s", name, ps, w)
		}
	}
	if ps := out.TCPRouteParents[types.NamespacedName{Namespace: "app", Name: "db"}]; len(ps) != 1 || conds(ps[0].Conditions) != "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs" {
		t.Errorf("TCPRoute: %+v", ps)
	}
	if ps := out.RouteParents[types.NamespacedName{Namespace: "app", Name: "web"}]; len(ps) != 1 || conds(ps[0].Conditions) != "Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs" {
		t.Errorf("HTTPRoute on the TLS listener: %+v", ps)
	}
	ls := out.Listeners
	if got := conds(ls[0].Conditions); got != "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs Conflicted=False/NoConflicts Programmed=True/Programmed" || ls[0].AttachedRoutes != 4 || len(ls[0].SupportedKinds) != 1 || ls[0].SupportedKinds[0].Kind != "TLSRoute" {
		t.Errorf("tls listener: %s, %d routes, kinds %v", got, ls[0].AttachedRoutes, ls[0].SupportedKinds)
	}
	if ls[1].AttachedRoutes != 1 || ls[1].SupportedKinds[0].Kind != "TCPRoute" {
		t.Errorf("tcp listener: %+v", ls[1])
	}
	if got := conds(ls[2].Conditions[:1]); got != "Accepted=False/UnsupportedValue" || len(ls[2].SupportedKinds) != 0 {
		t.Errorf("TLS Terminate listener: %s", got)
	}
	if got := conds(ls[3].Conditions[1:2]); got != "ResolvedRefs=False/InvalidRouteKinds" {
		t.Errorf("TLS listener allowing HTTPRoute: %s", got)
	}

	// Traffic, through a real Caddy.
	if err := caddy.Load(out.Config, true); err != nil {
		t.Fatalf("loading: %v\n%s", err, out.Config)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	ask := func(name string, pool *x509.CertPool) (string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{ServerName: name, RootCAs: pool})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "hi\n")
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if got, err := ask("a.example.com", poolA); err != nil || got != "A hi\n" {
		t.Errorf("a.example.com: %q, %v", got, err)
	}
	if got, err := ask("x.wild.example.com", poolW); err != nil || got != "W hi\n" {
		t.Errorf("x.wild.example.com: %q, %v", got, err)
	}
	for _, name := range []string{"cross.example.com", "missing.example.com", "a.example.org", "b.example.com"} {
		if got, err := ask(name, poolA); err == nil {
			t.Errorf("%s: %q, want the connection refused", name, got)
		}
	}
	counts := map[string]int{}
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "x\n")
		b, _ := io.ReadAll(c)
		c.Close()
		counts[string(b)]++
	}
	if counts["t1 x\n"] != 6 || counts["t2 x\n"] != 2 {
		t.Errorf("TCP split %v, want 6:2", counts)
	}
	// The layer-4 servers are in their own app.
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	_ = json.Unmarshal(out.Config, &cfg)
	if _, ok := cfg.Apps["sentinel_l4"]; !ok {
		t.Errorf("no sentinel_l4 app: %s", out.Config)
	}
}
