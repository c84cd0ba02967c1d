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

// TestConfigLimitEnv: SENTINEL_MAX_CONFIG_MIB moves the limit of a whole
// configuration (16 MiB by default), for very large route tables.
func TestConfigLimitEnv(t *testing.T) {
	big := minimal + "// " + strings.Repeat("x", MaxConfigBytes) + "\n"
	if _, _, err := Adapt("test.kdl", []byte(big), noEnv, OSFiles{}); err == nil || !strings.Contains(err.Error(), "more than the limit of 16 MiB") {
		t.Errorf("default limit: %v", err)
	}
	if _, _, err := Adapt("test.kdl", []byte(big), envOf(MaxConfigEnv, "32"), OSFiles{}); err != nil {
		t.Errorf("raised limit: %v", err)
	}
	for _, bad := range []string{"0", "-1", "4097", "1.5", "lots"} {
		if _, _, err := Adapt("test.kdl", []byte(minimal), envOf(MaxConfigEnv, bad), OSFiles{}); err == nil || !strings.Contains(err.Error(), MaxConfigEnv) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if n, err := ConfigLimit(envOf(MaxConfigEnv, "64")); err != nil || n != 64<<20 {
		t.Errorf("ConfigLimit = %d %v", n, err)
	}
}

// TestConfigEditorKey maps admin-api config-editor (off unless #true).
func TestConfigEditorKey(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`admin-api { auth { token "t"; }; config-editor #true; }`)
	if !strings.Contains(string(out), `"config_editor":true`) {
		t.Errorf("not mapped: %s", out)
	}
	out, _ = mustAdapt(t, minimal+`admin-api { auth { token "t"; }; }`)
	if strings.Contains(string(out), `config_editor`) {
		t.Errorf("on by default: %s", out)
	}
	if _, _, err := adaptString(t, minimal+`admin-api { auth { token "t"; }; config-editor "yes"; }`); err == nil || !strings.Contains(err.Error(), "config-editor") {
		t.Errorf("a string: %v", err)
	}
}
