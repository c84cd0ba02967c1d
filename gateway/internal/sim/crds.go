package sim

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// CRDDir returns the directory of the Gateway API CRDs of channel
// ("standard" or "experimental") in the module cache, the version go.mod
// requires.
func CRDDir(channel string) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		panic(fmt.Sprintf("finding the sigs.k8s.io/gateway-api module (go list -m): %v", err))
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "crd", channel)
}

func ptr[T any](v T) *T { return &v }

// equalJSON compares two values by their JSON.
func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
