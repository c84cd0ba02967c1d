// Package sentinel brings every Sentinel module into a Caddy build:
//
//	xcaddy build --with github.com/sentinel-proxy/sentinel
//
// It also embeds the default configuration that `sentinel run` serves when
// no configuration is given, and the VERSION file: Sentinel's version,
// which `sentinel version`, the status page and sentinel_build_info report
// (internal/buildinfo).
package sentinel

import (
	_ "embed"

	"github.com/sentinel-proxy/sentinel/internal/buildinfo"

	// The KDL config adapter and the Sentinel modules.
	_ "github.com/sentinel-proxy/sentinel/gateway/l4"
	_ "github.com/sentinel-proxy/sentinel/kdladapter"
	_ "github.com/sentinel-proxy/sentinel/modules/accesslog"
	_ "github.com/sentinel-proxy/sentinel/modules/adaptive"
	_ "github.com/sentinel-proxy/sentinel/modules/agents"
	_ "github.com/sentinel-proxy/sentinel/modules/builtin"
	_ "github.com/sentinel-proxy/sentinel/modules/cache"
	_ "github.com/sentinel-proxy/sentinel/modules/cors"
	_ "github.com/sentinel-proxy/sentinel/modules/deferredlog"
	_ "github.com/sentinel-proxy/sentinel/modules/discovery"
	_ "github.com/sentinel-proxy/sentinel/modules/etcdstore"
	_ "github.com/sentinel-proxy/sentinel/modules/framing"
	_ "github.com/sentinel-proxy/sentinel/modules/geo"
	_ "github.com/sentinel-proxy/sentinel/modules/grpcweb"
	_ "github.com/sentinel-proxy/sentinel/modules/handoff"
	_ "github.com/sentinel-proxy/sentinel/modules/headerrename"
	_ "github.com/sentinel-proxy/sentinel/modules/kubestore"
	_ "github.com/sentinel-proxy/sentinel/modules/ratelimit"
	_ "github.com/sentinel-proxy/sentinel/modules/routeguard"
	_ "github.com/sentinel-proxy/sentinel/modules/routematch"
	_ "github.com/sentinel-proxy/sentinel/modules/sentinelapp"
	_ "github.com/sentinel-proxy/sentinel/modules/shadow"
	_ "github.com/sentinel-proxy/sentinel/modules/tenant"
	_ "github.com/sentinel-proxy/sentinel/modules/timeout"
	_ "github.com/sentinel-proxy/sentinel/modules/tracing"
	_ "github.com/sentinel-proxy/sentinel/modules/upstreamsource"
	_ "github.com/sentinel-proxy/sentinel/modules/wasm"
)

// DefaultConfig is the embedded default sentinel.kdl.
//
//go:embed default.kdl
var DefaultConfig []byte

// versionFile is the repository's VERSION file: the one place the version
// is written (the Makefile, the Dockerfile's label and the Helm chart read
// it too).
//
//go:embed VERSION
var versionFile string

// Version returns Sentinel's version, e.g. "0.1.0".
func Version() string { return buildinfo.Version() }

func init() {
	buildinfo.SetVersion(versionFile)
}
