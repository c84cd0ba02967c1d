package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// benchCert writes a self-signed certificate for localhost and 127.0.0.1.
func benchCert(b *testing.B) (string, string) {
	return testutil.WriteCert(b, b.TempDir(), "localhost", "127.0.0.1")
}

// BenchmarkHTTP3vsHTTP2 compares GET request throughput through Sentinel
// over HTTP/3 (quic-go client) and HTTP/2 (TLS) on the same h3 listener,
// proxied to an HTTP/1.1 backend, from 16 concurrent clients per
// GOMAXPROCS on one connection:
//
//	go test ./integration -run '^$' -bench HTTP3vsHTTP2 -benchtime 3s -count 3
func BenchmarkHTTP3vsHTTP2(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 1024)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	})}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	cert, key := benchCert(b)
	listen := testutil.FreeAddr(b)
	loadKDL(b, h3KDL(listen, cert, key, l.Addr().String()))
	url := "https://" + listen + "/bench"

	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}, //nolint:gosec // test certificates
	}}
	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  string
	}{{"h2", h2, "HTTP/2.0"}, {"h3", h3Client(b), "HTTP/3.0"}} {
		b.Run(tc.name, func(b *testing.B) {
			get := func() error {
				res, err := tc.client.Get(url)
				if err != nil {
					return err
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || n != int64(len(body)) || res.Proto != tc.proto {
					return fmt.Errorf("%d %s %d bytes", res.StatusCode, res.Proto, n)
				}
				return nil
			}
			if err := get(); err != nil { // connect
				b.Fatal(err)
			}
			parallelCalls(b, 16, "req", get)
		})
	}
}
