// Package bigconfig writes the generated KDL configurations that the
// big-configuration tests and benchmarks adapt, parse and load (issue
// 13.8): n routes and n upstreams of three targets each, with health
// checks, weighted balancing, a filter, a timeout, request headers and
// retries on every route. It imports nothing of Sentinel's, so that the
// KDL parser's own tests can use it too.
package bigconfig

import (
	"fmt"
	"strings"
)

// Options changes what Config and Blocks write.
type Options struct {
	// NoHealthChecks leaves the upstreams' health-check blocks out (a
	// running config of them probes 3n unreachable targets).
	NoHealthChecks bool
}

// Header is the part of Config before the blocks: an empty system
// block, two listeners that differ only in their address, and the
// filter "tag" every route names.
const Header = "system { }\nlisteners {\n    listener \"http\" { address \"127.0.0.1:18080\"; }\n    listener \"ops\" { address \"127.0.0.1:18081\"; }\n}\n" +
	"filters {\n    filter \"tag\" {\n        type \"headers\"\n        set { \"X-Sentinel\" \"1\"; }\n    }\n}\n"

// healthCheck is an upstream's health-check block.
const healthCheck = "        health-check {\n            type \"http\" { path \"/health\"; }\n            interval-secs 5\n        }\n"

// Config is a whole configuration of n routes and n upstreams: Header,
// then Blocks.
func Config(n int, o Options) []byte {
	var b strings.Builder
	b.WriteString(Header)
	writeBlocks(&b, n, o)
	return []byte(b.String())
}

// Blocks is the routes container of n routes and the upstreams container
// of n upstreams alone.
func Blocks(n int, o Options) []byte {
	var b strings.Builder
	writeBlocks(&b, n, o)
	return []byte(b.String())
}

func writeBlocks(b *strings.Builder, n int, o Options) {
	b.WriteString("routes {\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(b, "    route \"r%d\" {\n        priority %d\n        matches {\n            path-prefix \"/svc%d\"\n            method \"GET\" \"POST\"\n        }\n        upstream \"u%d\"\n        filters \"tag\"\n        policies {\n            timeout-secs 30\n            request-headers { set { \"X-Route\" \"r%d\"; }; }\n        }\n        retry-policy { max-attempts 2; }\n    }\n", i, i%100, i, i, i)
	}
	b.WriteString("}\nupstreams {\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(b, "    upstream \"u%d\" {\n        target \"10.0.%d.1:8080\" weight=2\n        target \"10.0.%d.2:8080\" weight=1\n        target \"10.0.%d.3:8080\"\n        load-balancing \"weighted\"\n", i, i%250, i%250, i%250)
		if !o.NoHealthChecks {
			b.WriteString(healthCheck)
		}
		b.WriteString("        timeouts { connect-secs 2; request-secs 30; }\n    }\n")
	}
	b.WriteString("}\n")
}
