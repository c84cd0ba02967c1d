// Command sentinel is Caddy with the Sentinel modules and the KDL adapter,
// and defaults that fit Sentinel: `sentinel run` with no flags serves
// $SENTINEL_CONFIG, ./sentinel.kdl or the embedded default configuration,
// and a --config file ending in .kdl implies --adapter kdl.
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/sentinel-proxy/sentinel"
)

func main() {
	args, err := rewriteArgs(os.Args, os.Getenv("SENTINEL_CONFIG"), fileExists, writeDefaultConfig)
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
