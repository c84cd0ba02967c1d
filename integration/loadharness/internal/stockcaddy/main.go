// Command stockcaddy is stock Caddy: Caddy's command line with the standard
// modules and nothing of Sentinel's. The load harness builds it with this
// module's go.mod, so it is exactly the Caddy version (and the dependency
// versions) that Sentinel is built on: the fair baseline for benchmarks.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
