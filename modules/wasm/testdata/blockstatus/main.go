//go:build wasip1

// Command blockstatus is a test plugin that blocks every request with
// the status of its config ({"status": N}).
package main

import (
	"fmt"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

var cfg struct {
	Status int `json:"status"`
}

func init() {
	if err := sdk.DecodeConfig(&cfg); err != nil {
		sdk.Fail(fmt.Errorf("blockstatus: %w", err))
	}
}

//go:wasmexport on_request_headers
func onRequestHeaders() { sdk.Block(cfg.Status, "blocked") }

func main() {}
