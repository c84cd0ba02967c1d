package registry

import "testing"

// TestValidateAddressMappedIPv4: an IPv4-mapped IPv6 address is the IPv4
// address it maps (Go dials it as such): [::ffff:0.0.0.0] is the
// unspecified address (the local host), [::ffff:224.0.0.1] multicast.
func TestValidateAddressMappedIPv4(t *testing.T) {
	for _, bad := range []string{"[::ffff:0.0.0.0]:80", "[::ffff:0:0]:80", "[::ffff:224.0.0.1]:80", "[::]:80", "0.0.0.0:80"} {
		if ValidateAddress(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, good := range []string{"[::ffff:10.0.0.1]:80", "10.0.0.1:80", "[2001:db8::1]:443"} {
		if err := ValidateAddress(good); err != nil {
			t.Errorf("%s refused: %v", good, err)
		}
	}
}
