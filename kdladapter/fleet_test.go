package kdladapter

import (
	"strings"
	"testing"
)

// TestFleetKubernetes: admin-api.fleet.kubernetes maps to the app's
// `sentinel.stores.kubernetes` store; a fleet gives one home only.
func TestFleetKubernetes(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`admin-api { auth { token "t"; }; fleet { kubernetes { name "edge-state"; namespace "prod"; key "s"; kubeconfig "/etc/k"; context "c"; timeout "3s"; }; }; }`)
	want := `"store":{"context":"c","key":"s","kubeconfig":"/etc/k","name":"edge-state","namespace":"prod","store":"kubernetes","timeout":"3s"}`
	if !strings.Contains(string(out), want) {
		t.Fatalf("want %s in\n%s", want, out)
	}
	for src, msg := range map[string]string{
		`fleet { kubernetes { namespace "x"; }; }`:                                 "admin-api.fleet.kubernetes needs name (the ConfigMap holding the state)",
		`fleet { etcd { endpoints "http://e:2379"; }; kubernetes { name "s"; }; }`: "etcd and kubernetes exclude each other",
		`fleet { }`: "admin-api.fleet needs an etcd or a kubernetes block",
	} {
		if got := adaptErr(t, minimal+`admin-api { auth { token "t"; }; `+src+` }`, noEnv); !strings.Contains(got, msg) {
			t.Errorf("%s: %s, want %q", src, got, msg)
		}
	}
}
