//go:build wasip1

// Command paths is a test plugin that answers 299 with the paths the
// host gives it: "path=<get_path> raw=<get_raw_path>".
package main

import "github.com/sentinel-proxy/sentinel/examples/plugins/sdk"

//go:wasmexport on_request_headers
func onRequestHeaders() {
	sdk.Block(299, "path="+sdk.Path()+" raw="+sdk.RawPath())
}

func main() {}
