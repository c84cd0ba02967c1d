//go:build wasip1

// Command hostflood is a test plugin that hands the host 64 request
// headers of 64 KiB each (4 MiB, within its 16 MiB memory limit) on
// /flood, one such header on other paths.
package main

import (
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

var value = strings.Repeat("v", 64<<10)

//go:wasmexport on_request_headers
func onRequestHeaders() {
	n := 1
	if strings.HasPrefix(sdk.Path(), "/flood") {
		n = 64
	}
	for i := range n {
		sdk.AddHeader(sdk.Request, "X-Flood-"+strconv.Itoa(i), value)
	}
}

func main() {}
