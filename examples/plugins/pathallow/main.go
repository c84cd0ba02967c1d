//go:build wasip1

// Command pathallow is an example Sentinel WASM plugin: it allows requests
// whose path falls under one of the config's "allow" prefixes (segment by
// segment: "/api" covers "/api" and "/api/x", not "/apix"), redirects the
// paths of "redirects" (path → location, 301), and blocks the rest with
// 403 and a JSON body. It judges the normalised path (sdk.Path).
//
// A config without "allow", or with a single string where the list is
// expected (KDL `allow "/api"`; write `allow (list)"/api"`), fails the
// load with the reason instead of blocking every request.
package main

import (
	"fmt"
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

var cfg struct {
	Allow     []string          `json:"allow"`
	Redirects map[string]string `json:"redirects"`
}

func init() {
	if err := sdk.DecodeConfig(&cfg); err != nil {
		sdk.Fail(fmt.Errorf("pathallow: %w", err))
	}
	if cfg.Allow == nil {
		sdk.Fail(fmt.Errorf(`pathallow: config key "allow" is missing: the path prefixes to let through (KDL: allow "/api" "/ok", or allow (list)"/api" for one)`))
	}
}

// under reports whether path falls under prefix, segment by segment.
func under(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

//go:wasmexport on_request_headers
func onRequestHeaders() {
	path := sdk.Path()
	if loc, ok := cfg.Redirects[path]; ok {
		sdk.Redirect(301, loc)
		return
	}
	for _, p := range cfg.Allow {
		if under(path, p) {
			return
		}
	}
	sdk.Block(403, `{"error":"path not allowed"}`)
	sdk.AddResponseHeader("Content-Type", "application/json")
	sdk.AddResponseHeader("X-Blocked-By", "pathallow")
}

func main() {}
