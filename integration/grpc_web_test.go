package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
	// The grpc_web handler; the root package will import it with the
	// adapter's `grpc-web` filter type.
	_ "github.com/sentinel-proxy/sentinel/modules/grpcweb"
)

// grpcWebCall posts one gRPC-Web message (binary or text) and returns the
// response and a reader of its decoded frames.
func grpcWebCall(t *testing.T, url string, text bool, m proto.Message, hdr map[string]string) (*http.Response, *bufio.Reader) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b)))
	body = append(body, b...)
	ct := "application/grpc-web+proto"
	if text {
		ct = "application/grpc-web-text"
		body = []byte(base64.StdEncoding.EncodeToString(body))
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", ct)
	req.Header.Set("X-Grpc-Web", "1")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.ProtoMajor != 1 {
		t.Fatalf("spoke %s, want HTTP/1.1", res.Proto)
	}
	var r io.Reader = res.Body
	if text {
		r = base64Chunks(res.Body)
	}
	return res, bufio.NewReader(r)
}

// base64Chunks decodes a -text response body, which is a series of padded
// base64 chunks, as it streams.
func base64Chunks(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReader(r)
		quad := make([]byte, 4)
		out := make([]byte, 3)
		for {
			if _, err := io.ReadFull(br, quad); err != nil {
				if err == io.ErrUnexpectedEOF {
					err = fmt.Errorf("base64 body cut in a group")
				}
				pw.CloseWithError(err)
				return
			}
			n, err := base64.StdEncoding.Decode(out, quad)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(out[:n]); err != nil {
				return
			}
		}
	}()
	return pr
}

// webFrame reads one gRPC-Web frame: flag and payload; io.EOF at the end.
func webFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	_, err := io.ReadFull(r, b)
	return hdr[0], b, err
}

// webMessage reads a message frame into m.
func webMessage(t *testing.T, r *bufio.Reader, m proto.Message) {
	t.Helper()
	flag, b, err := webFrame(r)
	if err != nil || flag != 0 {
		t.Fatalf("want a message frame: flag %#x, %v", flag, err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
}

// webTrailers reads the final trailer frame.
func webTrailers(t *testing.T, r *bufio.Reader) textproto.MIMEHeader {
	t.Helper()
	flag, b, err := webFrame(r)
	if err != nil || flag != 0x80 {
		t.Fatalf("want the trailer frame: flag %#x, %v", flag, err)
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(b, "\r\n"...)))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("trailer frame %q: %v", b, err)
	}
	if _, _, err := webFrame(r); err != io.EOF {
		t.Fatalf("data after the trailer frame: %v", err)
	}
	return h
}

// TestGRPCWeb sends gRPC-Web (binary and text, unary and server streaming)
// over HTTP/1.1 through a KDL-configured route with a cors and a
// grpc-web filter, and an h2c upstream running grpc-go.
func TestGRPCWeb(t *testing.T) {
	b := startGRPCBackend(t, "web", nil)
	listen := testutil.FreeAddr(t)
	kdl := fmt.Sprintf(`
system { }
listeners {
    listener "web" { address %q; protocol "http"; }
}
routes {
    route "grpc-web" {
        matches { path-prefix "/grpc.testing.TestService/"; }
        filters "cors" "grpc-web"
        upstream "grpc"
    }
}
filters {
    filter "grpc-web" { type "grpc-web"; }
    filter "cors" {
        type "cors"
        allowed-origins "https://app.test"
        allowed-headers "content-type" "x-grpc-web" "x-user-agent" "grpc-timeout"
        exposed-headers "grpc-status" "grpc-message"
    }
}
upstreams {
    upstream "grpc" {
        target %q
        http-version { min-version 2; max-version 2; }
    }
}
`, listen, b.addr)
	cfg, _, err := kdladapter.Adapt("grpc-web.kdl", []byte(withAdmin(kdl)), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	tester(t).InitServer(string(cfg), "json")
	base := "http://" + listen + "/grpc.testing.TestService/"
	origin := map[string]string{"Origin": "https://app.test"}

	t.Run("CORS preflight", func(t *testing.T) {
		status, _, hdr := get(t, client(), "OPTIONS", base+"UnaryCall", map[string]string{
			"Origin": "https://app.test", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "content-type,x-grpc-web",
		})
		if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://app.test" {
			t.Errorf("%d %v", status, hdr)
		}
	})

	for _, text := range []bool{false, true} {
		t.Run(fmt.Sprintf("text=%v", text), func(t *testing.T) {
			t.Run("unary", func(t *testing.T) {
				res, r := grpcWebCall(t, base+"UnaryCall", text, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hi")}}, origin)
				if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/grpc-web") ||
					res.Header.Get("Access-Control-Allow-Origin") != "https://app.test" || res.Header.Get("X-Backend") != "web" {
					t.Fatalf("%d %v", res.StatusCode, res.Header)
				}
				if !strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Expose-Headers")), "grpc-status") {
					t.Errorf("grpc-status not exposed: %v", res.Header)
				}
				var out testpb.SimpleResponse
				webMessage(t, r, &out)
				if string(out.GetPayload().GetBody()) != "hi" || out.GetServerId() != "web" {
					t.Errorf("response %v", &out)
				}
				if tr := webTrailers(t, r); tr.Get("Grpc-Status") != "0" {
					t.Errorf("trailers %v", tr)
				}
			})
			t.Run("status and trailer metadata", func(t *testing.T) {
				_, r := grpcWebCall(t, base+"UnaryCall", text, &testpb.SimpleRequest{
					ResponseStatus: &testpb.EchoStatus{Code: 5, Message: "no such thing"},
				}, origin)
				tr := webTrailers(t, r)
				if tr.Get("Grpc-Status") != "5" || tr.Get("Grpc-Message") != "no such thing" || strings.Join(tr.Values("X-Trailer"), ",") != "t1,t2" {
					t.Errorf("trailers %v", tr)
				}
			})
			t.Run("server streaming, flushed message by message", func(t *testing.T) {
				sizes := []int{3, 50000, 1, 7}
				params := make([]*testpb.ResponseParameters, len(sizes))
				for i, s := range sizes {
					params[i] = &testpb.ResponseParameters{Size: int32(s)}
				}
				_, r := grpcWebCall(t, base+"StreamingOutputCall", text, &testpb.StreamingOutputCallRequest{
					Payload: &testpb.Payload{Body: []byte(bodyGated)}, ResponseParameters: params,
				}, origin)
				for i, s := range sizes {
					var out testpb.StreamingOutputCallResponse
					webMessage(t, r, &out) // the server waits for the gate before the next
					if len(out.GetPayload().GetBody()) != s {
						t.Fatalf("message %d: %d bytes", i, len(out.GetPayload().GetBody()))
					}
					b.gate <- struct{}{}
				}
				if tr := webTrailers(t, r); tr.Get("Grpc-Status") != "0" {
					t.Errorf("trailers %v", tr)
				}
				<-b.gate
			})
			t.Run("grpc-timeout is a deadline", func(t *testing.T) {
				start := time.Now()
				res, r := grpcWebCall(t, base+"UnaryCall", text, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(bodySleep)}},
					map[string]string{"Grpc-Timeout": "200m"})
				// The status is in the headers (trailers-only) or in the
				// trailer frame, depending on whether grpc-go sent headers.
				code := res.Header.Get("Grpc-Status")
				if code == "" {
					code = webTrailers(t, r).Get("Grpc-Status")
				} else if _, _, err := webFrame(r); err != io.EOF {
					t.Errorf("trailers-only response with a body: %v", err)
				}
				if code != "4" {
					t.Errorf("grpc-status %q, want 4 (DEADLINE_EXCEEDED); headers %v", code, res.Header)
				}
				if el := time.Since(start); el > 3*time.Second {
					t.Errorf("took %v", el)
				}
				<-b.deadline
				waitErr(t, "the server's context to end", b.ended)
			})
		})
	}
}
