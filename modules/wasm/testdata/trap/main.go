//go:build wasip1

// Command trap is a test plugin that panics (the Go runtime exits) on
// requests to paths starting with /trap.
package main

import (
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

//go:wasmexport on_request_headers
func onRequestHeaders() {
	if strings.HasPrefix(sdk.Path(), "/trap") {
		var m map[string]int
		m["x"] = 1
	}
}

func main() {}
