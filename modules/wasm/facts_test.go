package wasm

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestTLSFacts: get_tls, get_query, get_client_addr, get_client_ip and
// get_route_id through the Go SDK, on a TLS request with a client
// certificate and on a plain one.
func TestTLSFacts(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"route": "r1", "plugins": []any{map[string]any{"path": buildPlugin(t, "facts"), "timeout": "5s"}}}))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := testutil.CertPEM("client.example")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	req := httptest.NewRequest("GET", "/x?a=1", nil)
	req.RemoteAddr = "192.0.2.7:4321"
	req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, ServerName: "api.example",
		NegotiatedProtocol: "h2", PeerCertificates: []*x509.Certificate{cert}}
	rec := serveStage(t, h.chain, req)
	want := "query=a=1 addr=192.0.2.7:4321 ip=192.0.2.7 route=r1 tls=1.3|TLS_AES_128_GCM_SHA256|api.example|h2|" + cert.Subject.String() + "|" + hex.EncodeToString(sum[:])
	if rec.Code != 299 || rec.Body.String() != want {
		t.Errorf("TLS: %d %q\nwant %q", rec.Code, rec.Body.String(), want)
	}
	req.TLS = &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	if rec := serveStage(t, h.chain, req); !strings.HasSuffix(rec.Body.String(), " tls=1.2|TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256|||-|-") {
		t.Errorf("TLS without a client certificate: %q", rec.Body.String())
	}
	req.TLS = nil
	if rec := serveStage(t, h.chain, req); !strings.HasSuffix(rec.Body.String(), " tls=-|-|-|-|-|-") {
		t.Errorf("plain HTTP: %q", rec.Body.String())
	}
}

// futureModule is a minimal module that imports sentinel_v1.get_future
// (a function no revision has) and exports an empty on_request_headers.
var futureModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
	0x02, 0x1a, 0x01, 0x0b, 's', 'e', 'n', 't', 'i', 'n', 'e', 'l', '_', 'v', '1',
	0x0a, 'g', 'e', 't', '_', 'f', 'u', 't', 'u', 'r', 'e', 0x00, 0x00, // import
	0x03, 0x02, 0x01, 0x00, // functions
	0x07, 0x16, 0x01, 0x12, 'o', 'n', '_', 'r', 'e', 'q', 'u', 'e', 's', 't', '_', 'h', 'e', 'a', 'd', 'e', 'r', 's', 0x00, 0x01, // export
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code
}

// TestLaterRevisionRefused: a plugin importing a sentinel_v1 function
// this Sentinel does not have fails the load with an error naming it.
func TestLaterRevisionRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.wasm")
	if err := os.WriteFile(path, futureModule, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{"id": "f", "path": path}}}))
	if err == nil || !strings.Contains(err.Error(), "module imports sentinel_v1.get_future, which this Sentinel does not provide") {
		t.Fatalf("error: %v", err)
	}
}
