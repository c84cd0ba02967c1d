//go:build wasip1

// Command memhog is a test plugin that allocates 64 MiB per request.
package main

import _ "github.com/sentinel-proxy/sentinel/examples/plugins/sdk"

var keep [][]byte

//go:wasmexport on_request_headers
func onRequestHeaders() {
	for i := 0; i < 64; i++ {
		b := make([]byte, 1<<20)
		b[0] = 1
		keep = append(keep, b)
	}
}

func main() {}
