package controlapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// resolveTimeout bounds the DNS lookup of a target's host name.
const resolveTimeout = 3 * time.Second

// targetPolicy decides which addresses targets added through the API may
// have, so that a token cannot turn the proxy against itself or its host:
// by default loopback, link-local, unspecified and multicast addresses
// are refused (Caddy's admin endpoint, the control API, cloud metadata
// services), and with allowed networks configured a target must be in
// one of them. The proxy's own listening addresses are always refused.
// Targets the configuration declares are the operator's own choice and
// are not checked.
type targetPolicy struct {
	allowed []netip.Prefix
	// own lists the proxy's own listening addresses.
	own func() []string
	// resolve looks host names up.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// local lists the addresses of this host's interfaces.
	local func() []netip.Addr
}

// newTargetPolicy builds the policy of cfg (which is valid).
func newTargetPolicy(cfg Config, hooks Hooks) *targetPolicy {
	p := &targetPolicy{own: hooks.OwnAddresses, resolve: hooks.Resolve, local: interfaceAddrs}
	for _, n := range cfg.AllowedTargetNetworks {
		prefix, _ := parseNetwork(n)
		p.allowed = append(p.allowed, prefix)
	}
	if p.own == nil {
		p.own = func() []string { return nil }
	}
	if p.resolve == nil {
		p.resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return p
}

// parseNetwork parses a CIDR prefix or a single IP address.
func parseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// interfaceAddrs returns the IP addresses of this host's interfaces.
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// check refuses an address the API may not make a target (403, naming
// the field, the address and why). The address is syntactically valid.
func (p *targetPolicy) check(ctx context.Context, field, address string) error {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return fieldError(field, "%s %q must be host:port", field, address)
	}
	port, _ := strconv.Atoi(portText)
	var ips []netip.Addr
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		// Loopback by definition (RFC 6761), whatever a resolver says.
		ips = []netip.Addr{netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1")}
	} else {
		lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		ips, err = p.resolve(lctx, host)
		cancel()
		if err != nil || len(ips) == 0 {
			return &apiError{status: http.StatusUnprocessableEntity, field: field,
				message: fmt.Sprintf("%s %q: the host name does not resolve, so the target cannot be checked against the allowed networks", field, address)}
		}
	}
	for _, ip := range ips {
		if why := p.refuse(ip.WithZone("").Unmap(), port); why != "" {
			return &apiError{status: http.StatusForbidden, field: field,
				message: fmt.Sprintf("%s %q: %s; targets added through the API may not point at the proxy or its host (admin-api allowed-target-networks widens this)", field, address, why)}
		}
	}
	return nil
}

// refuse returns why ip:port may not be a target, or "".
func (p *targetPolicy) refuse(ip netip.Addr, port int) string {
	if p.isOwn(ip, port) {
		return fmt.Sprintf("%s port %d is one of the proxy's own listeners", ip, port)
	}
	if len(p.allowed) > 0 {
		for _, n := range p.allowed {
			if n.Contains(ip) {
				return ""
			}
		}
		return fmt.Sprintf("%s is not in the allowed target networks", ip)
	}
	switch {
	case ip.IsLoopback():
		return fmt.Sprintf("%s is a loopback address", ip)
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return fmt.Sprintf("%s is a link-local address", ip)
	case ip.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address", ip)
	case ip.IsMulticast():
		return fmt.Sprintf("%s is a multicast address", ip)
	}
	return ""
}

// isOwn reports whether ip:port is one of the proxy's own listening
// addresses (a wildcard listener owns the port on every local address).
func (p *targetPolicy) isOwn(ip netip.Addr, port int) bool {
	for _, a := range p.own() {
		host, portText, err := net.SplitHostPort(a)
		if err != nil || portText != strconv.Itoa(port) {
			continue
		}
		switch {
		case host == "":
			if p.isLocal(ip) {
				return true
			}
		case strings.EqualFold(host, "localhost"):
			if ip.IsLoopback() {
				return true
			}
		default:
			own, err := netip.ParseAddr(host)
			if err != nil {
				continue
			}
			own = own.WithZone("").Unmap()
			if own == ip || own.IsUnspecified() && p.isLocal(ip) {
				return true
			}
		}
	}
	return false
}

// isLocal reports whether ip is an address of this host.
func (p *targetPolicy) isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	for _, a := range p.local() {
		if a == ip {
			return true
		}
	}
	return false
}
