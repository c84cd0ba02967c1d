// Package reloading holds what the apps of a configuration that replaces
// a running one share about the replacement.
package reloading

import "github.com/caddyserver/caddy/v2"

// Replacing reports whether a config is running in this process, which a
// config being provisioned would replace if it starts.
//
// An app that opens a listener of its own (the sentinel app's
// control-plane API, the agents app's registration listener) claims it
// while it is provisioned, not in Start, when its config would replace a
// running one, because a config that fails in Start takes the running
// config's traffic with it for a moment: Caddy starts the apps of a new
// config one after the other in map order, and its http app, once
// started, accepts connections on its own SO_REUSEPORT socket of the
// shared addresses. If another app's Start then failed, the connections
// the kernel had given to the new socket were answered by the failed
// config's routes (whose upstreams were being discarded: 503) or reset
// when the socket closed (EOF). A failure during provisioning comes
// before any app starts, so no socket of the failed config ever listens;
// the app releases the claim in Cleanup. With no config running there is
// nothing to protect, and the claim stays in Start, so that validating a
// config (caddy validate, in a process of its own) never binds an
// address, which a running proxy may hold.
func Replacing() bool { return caddy.ActiveContext().Context != nil }
