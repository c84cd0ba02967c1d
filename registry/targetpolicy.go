package registry

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
)

// TargetPolicy decides which addresses targets added through the
// control-plane API may have, so that a token cannot turn the proxy
// against itself or its host: by default loopback, link-local (cloud
// metadata services such as 169.254.169.254), unspecified and multicast
// addresses are refused, and with Allowed networks a target must be in
// one of them. The proxy's own listening addresses are always refused.
// Targets the configuration declares (or its discovery finds) are the
// operator's own choice and are not checked.
//
// The control-plane API checks a target's addresses when it is added
// (modules/controlapi), and the proxy checks the address it connected to
// at every dial of a target added through the API with a host name (see
// Registry.CheckDial), so that a name resolving elsewhere later (DNS
// rebinding) cannot reach what the API refused. A TargetPolicy is not
// changed once in use.
type TargetPolicy struct {
	// Allowed are the networks targets must be in (none: any address but
	// the refused kinds).
	Allowed []netip.Prefix
	// Own lists the proxy's own listening addresses (host:port; an
	// empty host is a wildcard). Nil: none.
	Own func() []string
	// Local lists the addresses of this host's interfaces (nil: read
	// from the system).
	Local func() []netip.Addr
}

// Refuse returns why ip:port may not be the address of a target added
// through the API, or "" when it may.
func (p *TargetPolicy) Refuse(ip netip.Addr, port int) string {
	ip = ip.WithZone("").Unmap()
	if p.isOwn(ip, port) {
		return fmt.Sprintf("%s port %d is one of the proxy's own listeners", ip, port)
	}
	return p.refuseKind(ip)
}

// refuseKind returns why ip may not be a target's address by its kind or
// network (the allowed networks, else loopback, link-local, unspecified
// and multicast refused), or "" when it may; the proxy's own addresses
// are not looked at.
func (p *TargetPolicy) refuseKind(ip netip.Addr) string {
	if len(p.Allowed) > 0 {
		for _, n := range p.Allowed {
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
func (p *TargetPolicy) isOwn(ip netip.Addr, port int) bool {
	if p.Own == nil {
		return false
	}
	for _, a := range p.Own() {
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
func (p *TargetPolicy) isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	local := p.Local
	if local == nil {
		local = InterfaceAddrs
	}
	for _, a := range local() {
		if a == ip {
			return true
		}
	}
	return false
}

// InterfaceAddrs returns the IP addresses of this host's interfaces.
func InterfaceAddrs() []netip.Addr {
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

// defaultTargetPolicy applies while the running configuration has no
// control-plane API (targets it added earlier may still be in the
// registry, restored from the state store).
var defaultTargetPolicy = &TargetPolicy{}

// dialGuard is the registry's part of the dial-time check: the policy
// of the running configuration's API and the addresses to check.
type dialGuard struct {
	policy atomic.Pointer[TargetPolicy]
	// names is the set of the addresses (host:port) of the targets added
	// through the API with a host name, rebuilt with the pools; nil when
	// there are none.
	names   atomic.Pointer[map[string]struct{}]
	refused atomic.Uint64
}

// SetTargetPolicy makes p the policy that CheckDial applies (nil: the
// default policy, which refuses loopback, link-local, unspecified and
// multicast addresses). The sentinel app sets its API's policy when its
// configuration becomes the running one.
func (r *Registry) SetTargetPolicy(p *TargetPolicy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.guard.policy.Store(p)
	r.rebuildGuarded() // the IP addresses refused depend on the policy
}

// TargetPolicyInUse returns the policy CheckDial applies.
func (r *Registry) TargetPolicyInUse() *TargetPolicy {
	if p := r.guard.policy.Load(); p != nil {
		return p
	}
	return defaultTargetPolicy
}

// Guarded reports whether address (host:port, as the proxy dials it) is
// the address of a target added through the API with a host name, whose
// connections CheckDial must check. It takes no lock and does not
// allocate.
func (r *Registry) Guarded(address string) bool {
	m := r.guard.names.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[address]
	return ok
}

// DialRefusedError is the error of a connection to a target that the
// target policy refuses (see CheckDial).
type DialRefusedError struct {
	// Address is the target's address, Remote the address connected to.
	Address, Remote string
	// Reason says why the policy refuses Remote.
	Reason string
}

// Error names the target, the address its name resolved to and why that
// address is refused.
func (e *DialRefusedError) Error() string {
	return fmt.Sprintf("target %s (added through the control-plane API) now resolves to %s: %s; connection refused by the target policy",
		e.Address, e.Remote, e.Reason)
}

// CheckDial checks the address a connection to target address reached
// against the target policy when the target was added through the API
// with a host name (see Guarded): nil when it may be used, a
// *DialRefusedError otherwise (also for a remote address that is not an
// IP address). Other addresses pass unchecked.
func (r *Registry) CheckDial(address string, remote net.Addr) error {
	if !r.Guarded(address) {
		return nil
	}
	var ap netip.AddrPort
	switch a := remote.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		if remote != nil {
			ap, _ = netip.ParseAddrPort(remote.String())
		}
	}
	ap = netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port())
	if !ap.Addr().IsValid() {
		r.guard.refused.Add(1)
		return &DialRefusedError{Address: address, Remote: fmt.Sprint(remote), Reason: "not an IP address"}
	}
	if why := r.TargetPolicyInUse().Refuse(ap.Addr(), int(ap.Port())); why != "" {
		r.guard.refused.Add(1)
		return &DialRefusedError{Address: address, Remote: ap.String(), Reason: why}
	}
	return nil
}

// DialsRefused counts the connections CheckDial refused.
func (r *Registry) DialsRefused() uint64 { return r.guard.refused.Load() }

// rebuildGuarded publishes the set of the addresses CheckDial checks:
// the targets that neither the config declares nor its discovery found
// (added through the API, or read from a state file or a fleet store,
// whatever origin the saved state gives them), when they have a host
// name, or an IP address the policy refuses by its kind or network. The
// API checked the IP addresses it added, but a state store's writer (a
// replica's etcd or ConfigMap, the operator's SentinelUpstreams) was not
// checked by the API: its 127.0.0.1 or 169.254.169.254 is refused at
// dial time like a host name resolving there. Called with mu held.
func (r *Registry) rebuildGuarded() {
	policy := r.TargetPolicyInUse()
	var names map[string]struct{}
	for _, e := range r.upstreams {
		// Without an override, the effective targets are the base.
		var base map[string]struct{}
		for _, t := range e.effective {
			if t.Origin != OriginAPI {
				if e.override == nil {
					continue
				}
				if base == nil {
					base = make(map[string]struct{}, len(e.base))
					for _, b := range e.base {
						base[b.Address] = struct{}{}
					}
				}
				if _, ok := base[t.Address]; ok {
					continue
				}
			}
			host, _, err := net.SplitHostPort(t.Address)
			if err != nil {
				host = t.Address
			}
			if ip, err := netip.ParseAddr(host); err == nil && policy.refuseKind(ip.WithZone("").Unmap()) == "" {
				continue // an allowed IP address: nothing to check at dial time
			}
			if names == nil {
				names = map[string]struct{}{}
			}
			names[t.Address] = struct{}{}
		}
	}
	if names == nil {
		r.guard.names.Store(nil)
		return
	}
	r.guard.names.Store(&names)
}

// dialCheckKey is the context key of a dial check (GuardContext).
type dialCheckKey struct{}

// dialCheck is the check GuardContext puts in a context.
type dialCheck struct {
	reg     *Registry
	address string
}

// GuardContext returns ctx carrying the dial-time check of target
// address when it is a target added through the API with a host name
// (see Guarded), for dials that do not know the target (the sentinel
// app's active health checks): they pass the address they connected to
// to CheckDialIn. ctx itself otherwise.
func (r *Registry) GuardContext(ctx context.Context, address string) context.Context {
	if !r.Guarded(address) {
		return ctx
	}
	return context.WithValue(ctx, dialCheckKey{}, dialCheck{reg: r, address: address})
}

// CheckDialIn checks a connection made for ctx that reached remote (see
// GuardContext and CheckDial): nil when ctx carries no check.
func CheckDialIn(ctx context.Context, remote net.Addr) error {
	c, ok := ctx.Value(dialCheckKey{}).(dialCheck)
	if !ok {
		return nil
	}
	return c.reg.CheckDial(c.address, remote)
}
