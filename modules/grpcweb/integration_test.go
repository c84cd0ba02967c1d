package grpcweb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2989

// testService is a grpc.testing.TestService: UnaryCall echoes the payload
// (or fails with the asked status), StreamingOutputCall sends one message
// per response parameter, waiting for gate before all but the first.
type testService struct {
	testpb.UnimplementedTestServiceServer
	gate chan struct{}
}

func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	grpc.SetHeader(ctx, metadata.Pairs("x-header", "h"))
	if st := req.GetResponseStatus(); st != nil {
		grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t"))
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("x-web-meta")) > 0 {
		req.Payload.Body = append(req.Payload.Body, md.Get("x-web-meta")[0]...)
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (s *testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for i, p := range req.GetResponseParameters() {
		if i > 0 {
			select {
			case <-s.gate:
			case <-time.After(5 * time.Second):
				return status.Error(codes.DeadlineExceeded, "gate not opened: the first message was not flushed")
			}
		}
		body := bytes.Repeat([]byte{byte('a' + i)}, int(p.GetSize()))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// startGRPC starts the test service on an h2c loopback listener.
func startGRPC(t *testing.T) (string, *testService) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &testService{gate: make(chan struct{}, 16)}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, svc)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String(), svc
}

// h1Transport and h2cTransport tell which protocol the client speaks.
type (
	h1Transport  struct{ *http.Transport }
	h2cTransport struct{ *http2.Transport }
)

func (h1Transport) wantProto() int  { return 1 }
func (h2cTransport) wantProto() int { return 2 }

// webClient speaks gRPC-Web over HTTP/1.1 or h2c.
type webClient struct {
	base string
	text bool
	hc   *http.Client
}

// call sends one request message and returns the response, with the
// body left to read frame by frame.
func (c webClient) call(t *testing.T, method string, req proto.Message, hdr map[string]string) (*http.Response, *frameReader) {
	t.Helper()
	msg, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	body := frame(0, string(msg))
	ct := "application/grpc-web+proto"
	if c.text {
		ct = "application/grpc-web-text+proto"
		body = []byte(base64.StdEncoding.EncodeToString(body))
	}
	hreq, err := http.NewRequest("POST", c.base+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", ct)
	hreq.Header.Set("X-Grpc-Web", "1")
	for k, v := range hdr {
		hreq.Header.Set(k, v)
	}
	res, err := c.hc.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if want := c.hc.Transport.(interface{ wantProto() int }).wantProto(); res.ProtoMajor != want {
		t.Fatalf("client spoke %s, want HTTP/%d", res.Proto, want)
	}
	var r io.Reader = res.Body
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/grpc-web-text") {
		r = newTextDecoder(res.Body)
	}
	return res, &frameReader{r: bufio.NewReader(r)}
}

// frameReader reads gRPC-Web frames from a (decoded) response body.
type frameReader struct{ r io.Reader }

// next returns the next frame; io.EOF at the end of the body.
func (f *frameReader) next(t *testing.T) (byte, []byte, error) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(f.r, b); err != nil {
		return 0, nil, err
	}
	return hdr[0], b, nil
}

// message reads a data frame into m.
func (f *frameReader) message(t *testing.T, m proto.Message) {
	t.Helper()
	flag, b, err := f.next(t)
	if err != nil || flag != 0 {
		t.Fatalf("want a message frame, got flag %#x, %v", flag, err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
}

// trailers reads the trailer frame, which must end the body.
func (f *frameReader) trailers(t *testing.T) textproto.MIMEHeader {
	t.Helper()
	flag, b, err := f.next(t)
	if err != nil || flag != 0x80 {
		t.Fatalf("want the trailer frame, got flag %#x, %v", flag, err)
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(b, "\r\n"...)))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("trailer frame %q: %v", b, err)
	}
	if _, _, err := f.next(t); err != io.EOF {
		t.Fatalf("data after the trailer frame: %v", err)
	}
	return h
}

func TestThroughCaddy(t *testing.T) {
	grpcAddr, svc := startGRPC(t)
	listen, down := testutil.FreeAddr(t), testutil.FreeAddr(t)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {"http": {"servers": {"web": {
			"listen": [%q],
			"automatic_https": {"disable": true},
			"protocols": ["h1", "h2c"],
			"routes": [
				{"match": [{"path": ["/down/*"]}], "handle": [
					{"handler": "rewrite", "strip_path_prefix": "/down"},
					{"handler": "grpc_web"},
					{"handler": "reverse_proxy", "transport": {"protocol": "http", "versions": ["h2c", "2"]}, "upstreams": [{"dial": %q}]}
				]},
				{"handle": [
					{"handler": "grpc_web"},
					{"handler": "reverse_proxy", "transport": {"protocol": "http", "versions": ["h2c", "2"]}, "upstreams": [{"dial": %q}]}
				]}
			]
		}}}}
	}`, adminPort, listen, down, grpcAddr), "json")

	h1 := &http.Client{Timeout: 10 * time.Second, Transport: h1Transport{&http.Transport{}}}
	h2c := &http.Client{Timeout: 10 * time.Second, Transport: h2cTransport{&http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, network, addr)
		},
	}}}
	for _, tc := range []struct {
		text bool
		hc   *http.Client
	}{{false, h1}, {true, h1}, {false, h2c}, {true, h2c}} {
		text := tc.text
		c := webClient{base: "http://" + listen, text: text, hc: tc.hc}
		wantCT := "application/grpc-web+proto"
		if text {
			wantCT = "application/grpc-web-text+proto"
		}
		proto := tc.hc.Transport.(interface{ wantProto() int }).wantProto()
		t.Run(fmt.Sprintf("text=%v/HTTP/%d", text, proto), func(t *testing.T) {
			t.Run("unary", func(t *testing.T) {
				res, fr := c.call(t, "/grpc.testing.TestService/UnaryCall",
					&testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}, map[string]string{"X-Web-Meta": "+meta"})
				if res.StatusCode != 200 || res.Header.Get("Content-Type") != wantCT || res.Header.Get("X-Header") != "h" {
					t.Fatalf("status %d, headers %v", res.StatusCode, res.Header)
				}
				var out testpb.SimpleResponse
				fr.message(t, &out)
				if string(out.GetPayload().GetBody()) != "ping+meta" {
					t.Errorf("payload %q", out.GetPayload().GetBody())
				}
				if tr := fr.trailers(t); tr.Get("Grpc-Status") != "0" {
					t.Errorf("trailers %v", tr)
				}
			})
			t.Run("error status and trailer metadata", func(t *testing.T) {
				_, fr := c.call(t, "/grpc.testing.TestService/UnaryCall",
					&testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "not now: 100%"}}, nil)
				tr := fr.trailers(t)
				if tr.Get("Grpc-Status") != "9" || tr.Get("Grpc-Message") != "not now: 100%25" || tr.Get("X-Trailer") != "t" {
					t.Errorf("trailers %v", tr)
				}
			})
			t.Run("server streaming is flushed message by message", func(t *testing.T) {
				_, fr := c.call(t, "/grpc.testing.TestService/StreamingOutputCall", &testpb.StreamingOutputCallRequest{
					ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 70000}, {Size: 2}},
				}, nil)
				for i, size := range []int{1, 70000, 2} {
					var out testpb.StreamingOutputCallResponse
					fr.message(t, &out) // the server waits for the gate before the next one
					if b := out.GetPayload().GetBody(); len(b) != size || b[0] != byte('a'+i) {
						t.Fatalf("message %d: %d bytes", i, len(b))
					}
					svc.gate <- struct{}{}
				}
				if tr := fr.trailers(t); tr.Get("Grpc-Status") != "0" {
					t.Errorf("trailers %v", tr)
				}
				<-svc.gate // the last token was not needed
			})
			t.Run("unknown method is a trailers-only response", func(t *testing.T) {
				res, fr := c.call(t, "/grpc.testing.TestService/UnimplementedCall", &testpb.Empty{}, nil)
				if res.Header.Get("Grpc-Status") != "12" || res.Header.Get("Content-Type") != wantCT {
					t.Errorf("headers %v", res.Header)
				}
				if _, _, err := fr.next(t); err != io.EOF {
					t.Errorf("body not empty: %v", err)
				}
			})
			t.Run("upstream down", func(t *testing.T) {
				res, fr := c.call(t, "/down/grpc.testing.TestService/UnaryCall", &testpb.SimpleRequest{}, nil)
				if res.StatusCode != 200 || res.Header.Get("Grpc-Status") != "14" {
					t.Errorf("status %d, headers %v", res.StatusCode, res.Header)
				}
				if _, _, err := fr.next(t); err != io.EOF {
					t.Errorf("body not empty: %v", err)
				}
			})
		})
	}

	// Plain gRPC through the same route is untouched.
	conn, err := grpc.NewClient("passthrough:///"+listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("native")}})
	if err != nil || string(out.GetPayload().GetBody()) != "native" {
		t.Errorf("plain gRPC: %v %v", out, err)
	}
}
