// Package buildinfo says which Sentinel a binary is: Sentinel's version
// (the repository's VERSION file, embedded by package sentinel), the
// Caddy it is built on and the Go that compiled it. The command line
// (`sentinel version`), the status page and the sentinel_build_info
// metric all read it here, so they cannot disagree.
package buildinfo

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Unknown is the version reported by a binary that does not link package
// sentinel (which embeds VERSION), such as a single package's tests.
const Unknown = "unknown"

// version is Sentinel's version. Package sentinel's init sets it, once,
// from the embedded VERSION file, before main runs; it is only read
// afterwards.
var version string

// SetVersion records Sentinel's version; package sentinel calls it from
// its init with the content of the VERSION file. Surrounding space is
// removed. It is not meant to be called anywhere else.
func SetVersion(v string) {
	version = strings.TrimSpace(v)
}

// Version returns Sentinel's version, e.g. "0.1.0", or Unknown.
func Version() string {
	if version == "" {
		return Unknown
	}
	return version
}

// CaddyVersion returns the version of the Caddy module built in, e.g.
// "v2.11.9".
func CaddyVersion() string {
	simple, _ := caddy.Version()
	return simple
}

// GoVersion returns the Go release that compiled the binary, e.g.
// "go1.26.8".
func GoVersion() string {
	return runtime.Version()
}

// String returns the one-line version text of `sentinel version`:
// "sentinel 0.1.0 (caddy v2.11.9, go1.26.8)".
func String() string {
	return fmt.Sprintf("sentinel %s (caddy %s, %s)", Version(), CaddyVersion(), GoVersion())
}
