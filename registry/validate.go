package registry

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits of registry values: the one rule for a target and an upstream
// id, used by the KDL adapter, the control-plane API and the state file.
const (
	// MaxWeight is the largest target weight.
	MaxWeight = 1 << 20
	// MaxIDLength is the longest upstream id made outside the config.
	MaxIDLength = 128
)

// InvalidError says which value of a target or upstream is invalid and
// why. It wraps ErrInvalid.
type InvalidError struct {
	// Field is the name of the value: id, address, weight, state or
	// origin.
	Field string
	// Value is the value as text.
	Value string
	// Reason says what is wrong and what is expected.
	Reason string
}

// Error returns "field "value": reason".
func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

func invalid(field, value, format string, args ...any) *InvalidError {
	return &InvalidError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// ValidateTarget checks a target: its address (ValidateAddress), its
// weight (1 to MaxWeight: a target that should get no new request is
// drained, not weighted 0), its state (active or draining; empty means
// active) and its origin (config, api, discovery or empty).
func ValidateTarget(t Target) error {
	if err := ValidateAddress(t.Address); err != nil {
		return err
	}
	if err := ValidateWeight(t.Weight); err != nil {
		return err
	}
	switch t.State {
	case "", StateActive, StateDraining:
	default:
		return invalid("state", string(t.State), "must be %q or %q", StateActive, StateDraining)
	}
	switch t.Origin {
	case "", OriginConfig, OriginAPI, OriginDiscovery:
	default:
		return invalid("origin", string(t.Origin), "must be %q, %q or %q", OriginConfig, OriginAPI, OriginDiscovery)
	}
	return nil
}

// ValidateWeight checks a target weight: 1 to MaxWeight.
func ValidateWeight(w int) error {
	if w < 1 || w > MaxWeight {
		return invalid("weight", strconv.Itoa(w), "must be from 1 to %d (drain a target to stop sending it requests)", MaxWeight)
	}
	return nil
}

// ValidateID checks the id of an upstream made outside the config
// (through the API, or read from a state file): 1 to MaxIDLength letters,
// digits, '.', '_' or '-', starting with a letter or digit, optionally
// qualified by a namespace and a service as the KDL adapter qualifies
// a namespace's ids ("team-a:api", "team-a:billing:db"; see
// NamespaceOf): each qualifier non-empty, of letters, digits, '.', '_'
// and '-'.
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return invalid("id", id, "must have 1 to %d characters", MaxIDLength)
	}
	local := id[strings.LastIndexByte(id, ':')+1:]
	if q := id[:len(id)-len(local)]; q != "" {
		parts := strings.Split(q[:len(q)-1], ":")
		if len(parts) > 2 {
			return invalid("id", id, "at most a namespace and a service qualify an id (ns:id or ns:service:id)")
		}
		for _, p := range parts {
			if !validQualifier(p) {
				return invalid("id", id, "a namespace or service qualifier is letters, digits, '.', '_' and '-' (ns:id)")
			}
		}
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case isAlnum(c):
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return invalid("id", id, "use letters, digits, '.', '_' and '-', starting with a letter or digit")
		}
	}
	if local == "" {
		return invalid("id", id, "use letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
	return nil
}

// validQualifier reports whether s may name a namespace or service in a
// qualified id.
func validQualifier(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return s != ""
}

// ValidateAddress checks a target address: host:port, where host is an
// IP address (IPv6 in brackets, with an optional zone) other than
// unspecified or multicast, or a DNS name, and port is 1-65535.
func ValidateAddress(addr string) error {
	bad := func(why string) error { return invalid("address", addr, "%s", why) }
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return bad("must be host:port (IPv6 in brackets)")
	}
	host, port := addr[:i], addr[i+1:]
	if len(port) == 0 || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
		return bad("the port must be a number from 1 to 65535")
	}
	if p, _ := strconv.Atoi(port); p < 1 || p > 65535 {
		return bad("the port must be a number from 1 to 65535")
	}
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		ip, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !ip.Is6() || !isZone(ip.Zone()) {
			return bad("the host in brackets must be an IPv6 address")
		}
		return checkIP(ip, bad)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is6() {
			return bad("an IPv6 address must be in brackets")
		}
		return checkIP(ip, bad)
	}
	if !isHostname(host) {
		return bad("the host must be an IP address or a DNS name")
	}
	return nil
}

// checkIP refuses addresses no request can be sent to. An IPv4-mapped
// IPv6 address is judged as the IPv4 address it is dialled as
// ([::ffff:0.0.0.0] is the unspecified address: the local host).
func checkIP(ip netip.Addr, bad func(string) error) error {
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() {
		return bad("the IP address is unspecified or multicast")
	}
	return nil
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isZone reports whether z is empty or an IPv6 zone of letters, digits,
// '.', '_' or '-'.
func isZone(z string) bool {
	for i := 0; i < len(z); i++ {
		if c := z[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// isHostname reports whether h is a DNS name: dot-separated labels of
// 1-63 letters, digits, '-' or '_' (an optional final dot), 253
// characters at most, the last label not all digits.
func isHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}
