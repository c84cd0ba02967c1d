//go:build wasip1

// Command facts is a test plugin that answers 299 with the request facts
// of sentinel_v1 revision 1.2, read with the Go SDK:
// "query=… addr=… ip=… route=… tls=version|cipher|sni|alpn|subject|sha256"
// (absent values are "-").
package main

import (
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

func or(v string, ok bool) string {
	if !ok {
		return "-"
	}
	return v
}

//go:wasmexport on_request_headers
func onRequestHeaders() {
	var tls []string
	for _, f := range []uint32{sdk.TLSVersion, sdk.TLSCipherSuite, sdk.TLSServerName, sdk.TLSALPN, sdk.TLSClientSubject, sdk.TLSClientSHA256} {
		tls = append(tls, or(sdk.TLSFact(f)))
	}
	sdk.Block(299, "query="+sdk.Query()+" addr="+sdk.ClientAddr()+" ip="+sdk.ClientIP()+
		" route="+or(sdk.RouteID())+" tls="+strings.Join(tls, "|"))
}

func main() {}
