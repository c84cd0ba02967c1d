package kubeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const config = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
- name: d
  cluster: {server: "https://127.0.0.2:6443"}
users:
- name: u
  user: {token: "s3cret-token"}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: team-a}
- name: two
  context: {cluster: d, user: u}
current-context: one
`

func TestLoadKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, ns, err := Load(path, "")
	if err != nil || cfg.Host != "https://127.0.0.1:6443" || ns != "team-a" {
		t.Fatalf("current context: %v %q %v", cfg, ns, err)
	}
	cfg, ns, err = Load(path, "two")
	if err != nil || cfg.Host != "https://127.0.0.2:6443" || ns != "default" {
		t.Fatalf("context two: %v %q %v", cfg, ns, err)
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, _, err := Load(missing, "")
	if err == nil || !strings.Contains(err.Error(), "kubeconfig "+missing) {
		t.Fatalf("missing file: %v", err)
	}
	// Not in a cluster: no service account environment.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, _, err = Load("", "")
	if err == nil || !strings.Contains(err.Error(), "not in a cluster") {
		t.Fatalf("in-cluster outside a cluster: %v", err)
	}
	// A bad file never shows its content (a token) in the error.
	path := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(path, []byte("token: s3cret-token\n: : :"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = Load(path, "")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad file: %v", err)
	}
}
