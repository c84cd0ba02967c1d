//go:build wasip1

// Command bodyguard is an example Sentinel WASM plugin: it blocks (400)
// requests whose body contains one of the config's "deny" strings.
package main

import (
	"bytes"
	"fmt"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

var cfg struct {
	Deny []string `json:"deny"`
}

func init() {
	if err := sdk.DecodeConfig(&cfg); err != nil {
		sdk.Fail(fmt.Errorf("bodyguard: %w", err))
	}
}

//go:wasmexport on_request_headers
func onRequestHeaders() {}

//go:wasmexport on_request_body
func onRequestBody() {
	body, ok := sdk.Body()
	if !ok {
		return
	}
	for _, d := range cfg.Deny {
		if bytes.Contains(body, []byte(d)) {
			sdk.Log(sdk.LevelWarn, "bodyguard: denied pattern "+d)
			sdk.Block(400, "request body rejected\n")
			return
		}
	}
}

func main() {}
