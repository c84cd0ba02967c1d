package reloading

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// CheckHTTPListeners checks, while a config that would replace a running
// one is provisioned, that every address its http app will listen on can
// be bound.
//
// Caddy starts a config's apps one after the other, and the http app
// binds its servers' addresses one by one in its Start: when a later
// address cannot be bound (another process holds it, a port below 1024
// without the capability), the servers already started have taken
// connections of the running config on their SO_REUSEPORT sockets of the
// shared addresses, which are answered by the failed config or reset when
// the load is rolled back. A failure here comes before any app starts.
//
// Each TCP address (and each port of a range) is bound the way Caddy
// binds it (same address family, SO_REUSEADDR and SO_REUSEPORT), so the
// bind fails when Caddy's would, and closed at once; the socket never
// listens, so the kernel hands it no connection. An HTTP/3 (UDP) address
// is bound and closed the same way unless the running config already
// serves it (Caddy shares that QUIC socket, binding nothing; a bound UDP
// socket of a SO_REUSEPORT group would receive a share of its datagrams).
// The check does not keep the addresses (a bound socket that does not
// listen keeps no SO_REUSEADDR listener off): a process that takes one in
// the milliseconds between the check and Start still fails the load
// there. A listen address that does not parse, or a network that
// cannot serve HTTP, fails as it would in Start. Unix sockets, file
// descriptors and port 0 are left to Start (they do not fail for a
// taken address).
//
// The http app is taken from ctx (provisioning it, if it was not yet);
// without an http app, or when its provisioning fails (which fails the
// load with its own error), nothing is checked. When the caller is
// itself provisioned by the http app (a handler loads it, see
// registry.From), the http app is not yet provisioned: its servers are
// as decoded, so their listen addresses' placeholders are replaced here,
// and the listeners of automatic HTTPS's redirects (which the KDL adapter
// turns off) are not there yet to be checked.
func CheckHTTPListeners(ctx caddy.Context) error {
	app, err := ctx.AppIfConfigured("http")
	if err != nil {
		return nil //nolint:nilerr // no http app, or its own error fails the load
	}
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return nil
	}
	names := make([]string, 0, len(httpApp.Servers))
	for name := range httpApp.Servers {
		names = append(names, name)
	}
	slices.Sort(names)
	httpPort := uint(httpApp.HTTPPort)
	if httpPort == 0 {
		httpPort = caddyhttp.DefaultHTTPPort
	}
	for _, name := range names {
		if err := checkServer(name, httpApp.Servers[name], httpPort); err != nil {
			return err
		}
	}
	return nil
}

// checkServer checks the addresses of one server. The HTTP port serves no
// HTTP/3 (Caddy serves TLS on any other port).
func checkServer(name string, srv *caddyhttp.Server, httpPort uint) error {
	if srv == nil {
		return nil
	}
	repl := caddy.NewReplacer()
	for i, lnAddr := range srv.Listen {
		// As the http app's Provision does (when it did not yet: see
		// CheckHTTPListeners); a placeholder it cannot replace fails
		// there.
		lnAddr, err := repl.ReplaceOrErr(lnAddr, true, true)
		if err != nil {
			continue
		}
		addr, err := caddy.ParseNetworkAddress(lnAddr)
		if err != nil {
			return fmt.Errorf("server %q: parsing listen address %q: %w", name, lnAddr, err)
		}
		protocols := srv.Protocols
		if i < len(srv.ListenProtocols) && srv.ListenProtocols[i] != nil {
			protocols = srv.ListenProtocols[i]
		}
		if len(protocols) == 0 {
			protocols = []string{"h1", "h2", "h3"} // Caddy's default
		}
		stream := slices.Contains(protocols, "h1") || slices.Contains(protocols, "h2") || slices.Contains(protocols, "h2c")
		h3 := slices.Contains(protocols, "h3") && len(srv.TLSConnPolicies) > 0
		if addr.IsUnixNetwork() || addr.IsFdNetwork() || strings.HasPrefix(addr.Network, "ip") {
			continue
		}
		if addr.StartPort == 0 && addr.EndPort == 0 {
			continue // the system picks a free port
		}
		for off := range addr.PortRangeSize() {
			hostport := addr.JoinHostPort(off)
			if stream && strings.HasPrefix(addr.Network, "tcp") {
				if err := bindProbe(addr.Network, hostport, true); err != nil {
					return fmt.Errorf("server %q: listening on %s: %w", name, addr.At(off), err)
				}
			}
			if !h3 || addr.StartPort+off == httpPort {
				continue
			}
			udp, ok := h3Network(addr.Network)
			if !ok {
				continue // Start says why
			}
			if caddy.ListenerUsage("quic"+udp, hostport) > 0 {
				continue // the running config's QUIC socket, which the new one shares
			}
			if err := bindProbe(udp, hostport, false); err != nil {
				return fmt.Errorf("server %q: starting HTTP/3 QUIC listener on %s: %w", name, hostport, err)
			}
		}
	}
	return nil
}

// h3Network is the UDP network Caddy serves HTTP/3 on for a server's
// network (caddyhttp's networkTypesHTTP3).
func h3Network(network string) (string, bool) {
	switch n := strings.ToLower(network); n {
	case "tcp", "udp":
		return "udp", true
	case "tcp4", "udp4":
		return "udp4", true
	case "tcp6", "udp6":
		return "udp6", true
	}
	return "", false
}
