//go:build wasip1

// Command pathallow is an example Sentinel WASM plugin: it allows requests
// whose path starts with one of the config's "allow" prefixes, redirects
// the paths of "redirects" (path → location, 301), and blocks the rest
// with 403 and a JSON body.
package main

import (
	"encoding/json"
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

var cfg struct {
	Allow     []string          `json:"allow"`
	Redirects map[string]string `json:"redirects"`
}

func init() {
	_ = json.Unmarshal(sdk.Config(), &cfg)
}

//go:wasmexport on_request_headers
func onRequestHeaders() {
	path := sdk.Path()
	if loc, ok := cfg.Redirects[path]; ok {
		sdk.Redirect(301, loc)
		return
	}
	for _, p := range cfg.Allow {
		if strings.HasPrefix(path, p) {
			return
		}
	}
	sdk.Block(403, `{"error":"path not allowed"}`)
	sdk.AddResponseHeader("Content-Type", "application/json")
	sdk.AddResponseHeader("X-Blocked-By", "pathallow")
}

func main() {}
