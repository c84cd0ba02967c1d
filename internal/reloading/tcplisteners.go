package reloading

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// L4AppName is the name of Sentinel's layer-4 app (gateway/l4), whose TCP
// listeners CheckListeners checks besides the http app's.
const L4AppName = "sentinel_l4"

// SentinelAppName is the name of the sentinel app (modules/sentinelapp).
const SentinelAppName = "sentinel"

// TCPListenApp is implemented by an app that listens on TCP addresses of
// its own, outside the http app (the sentinel_l4 app): CheckListeners
// bind-probes them as it does the http app's.
type TCPListenApp interface {
	// TCPListenAddresses returns the app's listen addresses (Caddy's
	// network address syntax) by server name.
	TCPListenAddresses() map[string][]string
}

// CheckListeners is CheckHTTPListeners, then the same check of the TCP
// listen addresses of the config's sentinel_l4 app, if it has one (taken
// from ctx, provisioning it if it was not yet; its provisioning error
// fails the load on its own). The layer-4 app binds its listeners one by
// one in its Start, which may come after the http app's: a taken address
// there rolls back a load whose http servers already took connections of
// the running config.
//
// The config's sentinel app runs it when the config would replace a
// running one; a config without a sentinel app (the Gateway API
// controller's), or with a passive one, runs it from its sentinel_l4 app
// (CheckListenersUnlessSentinel), so once per load.
func CheckListeners(ctx caddy.Context) error {
	if err := CheckHTTPListeners(ctx); err != nil {
		return fmt.Errorf("http app: %w", err)
	}
	app, err := ctx.AppIfConfigured(L4AppName)
	if err != nil {
		return nil //nolint:nilerr // no layer-4 app, or its own error fails the load
	}
	l4, ok := app.(TCPListenApp)
	if !ok {
		return nil
	}
	if err := CheckTCPListeners(l4.TCPListenAddresses()); err != nil {
		return fmt.Errorf("%s app: %w", L4AppName, err)
	}
	return nil
}

// ListenerChecker is implemented by the sentinel app: ChecksListeners
// reports whether its provisioning runs CheckListeners when the config
// replaces a running one (a passive sentinel app does not).
type ListenerChecker interface {
	ChecksListeners() bool
}

// CheckListenersUnlessSentinel runs CheckListeners for an app other than
// the sentinel app (the sentinel_l4 app, provisioned last in its
// Provision), unless the config's sentinel app runs it (see
// ListenerChecker): a config made by the Gateway API controller has no
// sentinel app, so that its listeners are checked once per load either
// way. It loads the sentinel app when the config has one and it is not
// provisioned yet (which Caddy would do next anyway).
func CheckListenersUnlessSentinel(ctx caddy.Context) error {
	app, err := ctx.AppIfConfigured(SentinelAppName)
	if err == nil {
		if c, ok := app.(ListenerChecker); ok && c.ChecksListeners() {
			return nil
		}
	} else if !errors.Is(err, caddy.ErrNotConfigured) {
		return nil // its own error fails the load
	}
	return CheckListeners(ctx)
}

// CheckTCPListeners bind-probes, as CheckHTTPListeners does a stream
// address, each TCP address (each port of a range) of the servers of
// listen (listen addresses by server name). An address whose network is
// not TCP, or that does not parse, is left to the app's Start, which
// fails the load the same way; so is port 0.
func CheckTCPListeners(listen map[string][]string) error {
	names := make([]string, 0, len(listen))
	for name := range listen {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, lnAddr := range listen[name] {
			addr, err := caddy.ParseNetworkAddress(lnAddr)
			if err != nil || !strings.HasPrefix(addr.Network, "tcp") {
				continue // Start says why
			}
			if addr.StartPort == 0 && addr.EndPort == 0 {
				continue // the system picks a free port
			}
			for off := range addr.PortRangeSize() {
				if err := bindProbe(addr.Network, addr.JoinHostPort(off), true); err != nil {
					return fmt.Errorf("server %q: listening on %s: %w", name, addr.At(off), err)
				}
			}
		}
	}
	return nil
}
