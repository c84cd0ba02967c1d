package reloading

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// bindProbe binds a socket of network (tcp…, udp…) to hostport as Go's
// net package and Caddy bind a listener there: the address family Go
// picks (a wildcard address of "tcp" or "udp" is the dual-stack [::]),
// SO_REUSEADDR for TCP as Go sets it, and SO_REUSEPORT as Caddy sets it.
// The socket is closed at once (it never listens). A port below 1024
// refused while CAP_NET_BIND_SERVICE is permitted is left to Caddy, which
// raises the capability to bind.
func bindProbe(network, hostport string, stream bool) error {
	var (
		ip   net.IP
		port int
		zone string
	)
	if stream {
		a, err := net.ResolveTCPAddr(network, hostport)
		if err != nil {
			return err
		}
		ip, port, zone = a.IP, a.Port, a.Zone
	} else {
		a, err := net.ResolveUDPAddr(network, hostport)
		if err != nil {
			return err
		}
		ip, port, zone = a.IP, a.Port, a.Zone
	}
	sotype := unix.SOCK_STREAM
	if !stream {
		sotype = unix.SOCK_DGRAM
	}
	last := network[len(network)-1]
	family, v6only := unix.AF_INET6, last == '6'
	switch {
	case last == '4':
		family = unix.AF_INET
	case ip == nil || ip.IsUnspecified():
		if last != '6' {
			ip = nil // 0.0.0.0 or [::] with "tcp": Go listens on the dual-stack [::]
		}
	case ip.To4() != nil:
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil && family == unix.AF_INET6 && ip == nil && !v6only {
		family = unix.AF_INET // no IPv6 in this system
		fd, err = unix.Socket(family, sotype|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd) //nolint:errcheck // a probe, never listened on
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolint(v6only)); err != nil {
			return fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	if stream {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("SO_REUSEADDR: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		a := &unix.SockaddrInet4{Port: port}
		if ip != nil {
			copy(a.Addr[:], ip.To4())
		}
		sa = a
	} else {
		a := &unix.SockaddrInet6{Port: port, ZoneId: zoneIndex(zone)}
		if ip != nil {
			copy(a.Addr[:], ip.To16())
		}
		sa = a
	}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EACCES) && bindCapabilityPermitted() {
			return nil
		}
		return fmt.Errorf("listen %s %s: bind: %w", network, hostport, err)
	}
	return nil
}

// zoneIndex is the interface index of an IPv6 zone (a name or a
// number), 0 for none, as Go's net package binds a link-local address.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	n, err := strconv.ParseUint(zone, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

func boolint(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bindCapabilityPermitted reports whether this process may raise
// CAP_NET_BIND_SERVICE, as Caddy does to bind a port below 1024 when it
// is permitted but not effective.
func bindCapabilityPermitted() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Permitted&(1<<unix.CAP_NET_BIND_SERVICE) != 0
}
