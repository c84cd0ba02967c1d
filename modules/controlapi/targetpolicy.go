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

	"github.com/sentinel-proxy/sentinel/registry"
)

// resolveTimeout bounds the DNS lookup of a target's host name.
const resolveTimeout = 3 * time.Second

// targetPolicy checks the addresses of targets added through the API
// against the registry's target policy (registry.TargetPolicy: loopback,
// link-local, unspecified and multicast addresses and the proxy's own
// listeners are refused, or, with allowed networks configured, anything
// outside them), resolving host names. The proxy applies the same
// policy to the address it connects to at each dial of such a target
// (registry.Registry.CheckDial), so that a name that resolves elsewhere
// later cannot get past it. Targets the configuration declares are the
// operator's own choice and are not checked.
type targetPolicy struct {
	rules *registry.TargetPolicy
	// resolve looks host names up.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// newTargetPolicy builds the policy of cfg (which is valid).
func newTargetPolicy(cfg Config, hooks Hooks) *targetPolicy {
	rules := &registry.TargetPolicy{Own: hooks.OwnAddresses}
	for _, n := range cfg.AllowedTargetNetworks {
		prefix, _ := parseNetwork(n)
		rules.Allowed = append(rules.Allowed, prefix)
	}
	p := &targetPolicy{rules: rules, resolve: hooks.Resolve}
	if p.resolve == nil {
		p.resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return p
}

// TargetPolicy returns the policy the API checks targets against, which
// the proxy applies at dial time too once this server's configuration
// runs (see registry.Registry.SetTargetPolicy).
func (s *Server) TargetPolicy() *registry.TargetPolicy { return s.policy.rules }

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
		if why := p.rules.Refuse(ip, port); why != "" {
			return &apiError{status: http.StatusForbidden, field: field,
				message: fmt.Sprintf("%s %q: %s; targets added through the API may not point at the proxy or its host (admin-api allowed-target-networks widens this)", field, address, why)}
		}
	}
	return nil
}
