// Package sentinel brings every Sentinel module into a Caddy build:
//
//	xcaddy build --with github.com/sentinel-proxy/sentinel
//
// It also embeds the default configuration that `sentinel run` serves when
// no configuration is given.
package sentinel

import (
	_ "embed"

	// The KDL config adapter and the Sentinel modules.
	_ "github.com/sentinel-proxy/sentinel/adaptive"
	_ "github.com/sentinel-proxy/sentinel/agents"
	_ "github.com/sentinel-proxy/sentinel/kdladapter"
	_ "github.com/sentinel-proxy/sentinel/modules/accesslog"
	_ "github.com/sentinel-proxy/sentinel/modules/builtin"
	_ "github.com/sentinel-proxy/sentinel/modules/cors"
	_ "github.com/sentinel-proxy/sentinel/modules/framing"
	_ "github.com/sentinel-proxy/sentinel/modules/grpcweb"
	_ "github.com/sentinel-proxy/sentinel/modules/handoff"
	_ "github.com/sentinel-proxy/sentinel/modules/headerrename"
	_ "github.com/sentinel-proxy/sentinel/modules/routeguard"
	_ "github.com/sentinel-proxy/sentinel/modules/routematch"
	_ "github.com/sentinel-proxy/sentinel/modules/sentinelapp"
	_ "github.com/sentinel-proxy/sentinel/modules/timeout"
	_ "github.com/sentinel-proxy/sentinel/modules/upstreamsource"
	_ "github.com/sentinel-proxy/sentinel/modules/wasm"
)

// DefaultConfig is the embedded default sentinel.kdl.
//
//go:embed default.kdl
var DefaultConfig []byte
