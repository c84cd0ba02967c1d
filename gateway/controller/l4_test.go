package controller_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// lineServer serves, on host, connections answered with answer and the
// first line read; with certPEM/keyPEM, over TLS.
func lineServer(t *testing.T, host, answer string, certPEM, keyPEM []byte) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if certPEM != nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
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
	}()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// TestTLSRouteAndTCPRouteEndToEnd: a Gateway with a TLS passthrough
// listener and a TCP listener, a TLSRoute and a TCPRoute in a real
// kube-apiserver; a real Sentinel replica passes TLS through by SNI (the
// client verifies the backend's own certificate) and splices TCP; the
// routes' status and the listeners' kinds and counts are written, and
// removed with the Gateway.
func TestTLSRouteAndTCPRouteEndToEnd(t *testing.T) {
	c := start(t)
	ip := endpointIP(t)
	ctx := context.Background()
	class(t, c)
	mkns(t, c, "l4")
	certPEM, keyPEM, err := testutil.CertPEM("secure.example.com")
	if err != nil {
		t.Fatal(err)
	}
	service(t, c, "l4", "secure", ip, lineServer(t, ip, "secure", certPEM, keyPEM))
	service(t, c, "l4", "db", ip, lineServer(t, ip, "db", nil, nil))

	tlsPort, tcpPort := int32(testutil.FreePort(t)), int32(testutil.FreePort(t))
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "l4", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "sentinel",
		Listeners: []gwv1.Listener{
			{Name: "tls", Port: tlsPort, Protocol: gwv1.TLSProtocolType, Hostname: ptr.To(gwv1.Hostname("*.example.com")),
				TLS: &gwv1.ListenerTLSConfig{Mode: ptr.To(gwv1.TLSModePassthrough)}},
			{Name: "tcp", Port: tcpPort, Protocol: gwv1.TCPProtocolType},
		},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	backend := func(name string) []gwv1.BackendRef {
		return []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To[int32](8080)}}}
	}
	tr := &gwv1.TLSRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "l4", Name: "secure"}, Spec: gwv1.TLSRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", SectionName: ptr.To(gwv1.SectionName("tls"))}}},
		Hostnames:       []gwv1.Hostname{"secure.example.com"},
		Rules:           []gwv1.TLSRouteRule{{BackendRefs: backend("secure")}},
	}}
	cr := &gwv1.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "l4", Name: "db"}, Spec: gwv1.TCPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", SectionName: ptr.To(gwv1.SectionName("tcp"))}}},
		Rules:           []gwv1.TCPRouteRule{{BackendRefs: backend("db")}},
	}}
	for _, o := range []client.Object{tr, cr} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	var host string
	eventually(t, 30*time.Second, func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if s := condOf(g.Status.Conditions, "Programmed"); s != "Programmed=True/Programmed" || len(g.Status.Addresses) != 1 || len(g.Status.Listeners) != 2 {
			return "Gateway " + s
		}
		for i, kind := range []gwv1.Kind{"TLSRoute", "TCPRoute"} {
			l := g.Status.Listeners[i]
			if l.AttachedRoutes != 1 || len(l.SupportedKinds) != 1 || l.SupportedKinds[0].Kind != kind || condOf(l.Conditions, "Programmed") != "Programmed=True/Programmed" {
				return fmt.Sprintf("listener %+v", l)
			}
		}
		host = g.Status.Addresses[0].Value
		return ""
	})
	parentsOf := func(o client.Object) string {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return err.Error()
		}
		var ps []gwv1.RouteParentStatus
		switch r := o.(type) {
		case *gwv1.TLSRoute:
			ps = r.Status.Parents
		case *gwv1.TCPRoute:
			ps = r.Status.Parents
		}
		if len(ps) != 1 {
			return fmt.Sprintf("%d parents", len(ps))
		}
		return condOf(ps[0].Conditions, "Accepted") + " " + condOf(ps[0].Conditions, "ResolvedRefs")
	}
	for _, o := range []client.Object{&gwv1.TLSRoute{ObjectMeta: tr.ObjectMeta}, &gwv1.TCPRoute{ObjectMeta: cr.ObjectMeta}} {
		eventually(t, 10*time.Second, func() string {
			if got := parentsOf(o); got != "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs" {
				return o.GetName() + ": " + got
			}
			return ""
		})
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	eventually(t, 10*time.Second, func() string {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", net.JoinHostPort(host, strconv.Itoa(int(tlsPort))),
			&tls.Config{ServerName: "secure.example.com", RootCAs: pool})
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(conn, "hi\n")
		if b, _ := io.ReadAll(conn); string(b) != "secure hi\n" {
			return fmt.Sprintf("TLS answer %q", b)
		}
		return ""
	})
	eventually(t, 10*time.Second, func() string {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(int(tcpPort))), 2*time.Second)
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(conn, "hi\n")
		if b, _ := io.ReadAll(conn); string(b) != "db hi\n" {
			return fmt.Sprintf("TCP answer %q", b)
		}
		return ""
	})
	if err := c.Delete(ctx, gw); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{&gwv1.TLSRoute{ObjectMeta: tr.ObjectMeta}, &gwv1.TCPRoute{ObjectMeta: cr.ObjectMeta}} {
		eventually(t, 10*time.Second, func() string {
			if got := parentsOf(o); got != "0 parents" {
				return o.GetName() + " after the Gateway's deletion: " + got
			}
			return ""
		})
	}
}
