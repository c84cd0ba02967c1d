package kdladapter

import (
	"strings"
	"testing"
)

// TestAllowedTargetNetworks maps admin-api allowed-target-networks and
// refuses values that are not networks, at their position.
func TestAllowedTargetNetworks(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`admin-api { auth { token "t"; }; allowed-target-networks "10.0.0.0/8" "127.0.0.1" "fd00::/8"; }`)
	if !strings.Contains(string(out), `"allowed_target_networks":["10.0.0.0/8","127.0.0.1","fd00::/8"]`) {
		t.Errorf("not mapped: %s", out)
	}
	_, _, err := adaptString(t, minimal+`admin-api { auth { token "t"; }; allowed-target-networks "10.0.0.0/8" "10.0.0.0/33" "intranet"; }`)
	if err == nil || !strings.Contains(err.Error(), `allowed-target-networks "10.0.0.0/33" is not a CIDR prefix`) || !strings.Contains(err.Error(), `"intranet"`) || !strings.Contains(err.Error(), "test.kdl:8:") {
		t.Errorf("bad networks: %v", err)
	}
}
