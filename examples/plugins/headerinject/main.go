//go:build wasip1

// Command headerinject is an example Sentinel WASM plugin: it sets the
// request headers of its config ("request_headers") before the request is
// proxied, and the response headers ("response_headers") on the response.
package main

import (
	"fmt"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

var cfg struct {
	RequestHeaders  map[string]string `json:"request_headers"`
	ResponseHeaders map[string]string `json:"response_headers"`
}

func init() {
	if err := sdk.DecodeConfig(&cfg); err != nil {
		sdk.Fail(fmt.Errorf("headerinject: %w", err))
	}
}

//go:wasmexport on_request_headers
func onRequestHeaders() {
	for k, v := range cfg.RequestHeaders {
		sdk.SetHeader(sdk.Request, k, v)
	}
}

//go:wasmexport on_response_headers
func onResponseHeaders() {
	for k, v := range cfg.ResponseHeaders {
		sdk.SetHeader(sdk.Response, k, v)
	}
}

func main() {}
