//go:build wasip1

// Command trivial is a test plugin that allows every request.
package main

import _ "github.com/sentinel-proxy/sentinel/examples/plugins/sdk"

//go:wasmexport on_request_headers
func onRequestHeaders() {}

func main() {}
