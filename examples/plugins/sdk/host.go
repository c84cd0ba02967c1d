//go:build !wasip1

package sdk

import (
	"fmt"
	"io"
)

// HostMessage is what a plugin built for a platform other than wasip1
// says: plugins are WASM reactors that Sentinel loads, not programs.
const HostMessage = "this is a Sentinel WASM plugin, loaded by the proxy (docs/wasm.md); build it with:\n" +
	"    GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm ."

// RunOnHost writes HostMessage to w and returns the exit status 2: the
// main of a plugin built for the host platform (so that `go build ./...`
// and `go vet` work on every platform, and `go run` explains itself).
func RunOnHost(w io.Writer) int {
	fmt.Fprintln(w, HostMessage)
	return 2
}
