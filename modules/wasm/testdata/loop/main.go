//go:build wasip1

// Command loop is a test plugin that never returns from on_request_headers.
package main

import _ "github.com/sentinel-proxy/sentinel/examples/plugins/sdk"

var n int

//go:wasmexport on_request_headers
func onRequestHeaders() {
	for {
		n++
	}
}

func main() {}
