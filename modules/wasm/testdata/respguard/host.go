//go:build !wasip1

package main

import (
	"os"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

// main, on a platform other than wasip1, only says how to build this
// test guest of modules/wasm (its tests build it for wasip1).
func main() { os.Exit(sdk.RunOnHost(os.Stderr)) }
