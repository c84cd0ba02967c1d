//go:build knownissues

// A known issue's test (docs/protocols.md, HTTP/3 header timeout): it
// fails today, so it is built only with `-tags knownissues`:
//
//	go test -tags knownissues ./integration -run TestH3HeaderTimeout

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestH3HeaderTimeout opens an HTTP/3 request stream and sends half of
// its HEADERS frame, keeping the QUIC connection alive with pings, then
// the rest after the listener's header-timeout-secs and
// keepalive-timeout-secs have both passed. Over HTTP/1.1 and HTTP/2 the
// connection would be closed by then (TestSlowHeaders); quic-go's HTTP/3
// server has no header timeout and stops its idle timer while a stream is
// open, so the request is still served: a client holds up to 100 such
// streams per connection, as many connections as it likes (a slow-headers
// attack over HTTP/3). Known issue, reported to the lead (Caddy's QUIC
// listener has no wrapper hook to set stream deadlines); the test
// asserts the fixed behaviour (build tag knownissues).
func TestH3HeaderTimeout(t *testing.T) {
	b := startH3Backend(t, 1)
	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1")
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "h3" {
        address %q
        protocol "h3"
        tls { cert-file %q; key-file %q; }
        header-timeout-secs 1
        keepalive-timeout-secs 1
    }
}
routes { route "app" { matches { path-prefix "/"; }; upstream "app"; }; }
upstreams { upstream "app" { target %q; }; }
`, listen, cert, key, b.addr))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, listen, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}}, //nolint:gosec // test certificate
		&quic.Config{KeepAlivePeriod: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/echo"}} {
		enc.WriteField(qpack.HeaderField{Name: f[0], Value: f[1]})
	}
	frame := quicvarint.Append(quicvarint.Append(nil, 0x01), uint64(block.Len())) // HEADERS
	frame = append(frame, block.Bytes()...)
	half := len(frame) / 2
	if _, err := str.Write(frame[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // header-timeout-secs 1, keepalive-timeout-secs 1
	_, werr := str.Write(frame[half:])
	str.Close()
	str.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, rerr := io.ReadAll(str)
	if werr == nil && rerr == nil && len(got) > 0 {
		t.Fatalf("a request whose headers took 3 s was served (%d bytes): HTTP/3 has no header timeout", len(got))
	}
}
