// Command sentinel is Caddy with the Sentinel modules and the KDL adapter,
// and defaults that fit Sentinel: `sentinel run` with no flags serves
// $SENTINEL_CONFIG, ./sentinel.kdl or the embedded default configuration,
// a --config file ending in .kdl implies --adapter kdl, and a --config
// directory in the original's multi-file layout is loaded as a whole.
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/sentinel-proxy/sentinel"
)

func main() {
	args, err := rewriteArgs(os.Args, os.Getenv("SENTINEL_CONFIG"), fileExists, writeDefaultConfig, directoryEntry)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sentinel:", err)
		os.Exit(1)
	}
	os.Args = args
	caddycmd.Main()
}

// writeDefaultConfig writes the embedded default config to a file and
// returns its path.
func writeDefaultConfig() (string, error) {
	return materialize(sentinel.DefaultConfig)
}
