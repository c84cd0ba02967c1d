// Package caddyfile holds what belongs to no single Sentinel module in the
// Caddyfile: a test that every Sentinel directive is registered, ordered
// and adapts as documented. Each module's own Caddyfile syntax lives
// beside the module (caddyfile.go), as in Caddy.
package caddyfile
