package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// crdDir is where the generated CRDs are kept.
const crdDir = "../../../deploy/operator/crds"

// chartFiles holds the Helm chart's copies of the CRDs and the role.
const chartFiles = "../../../charts/sentinel/files"

// TestCRDsCurrent regenerates the CRDs and the operator's ClusterRole
// with controller-gen (go generate ./operator/api/v1alpha1) and fails
// when the checked-in files differ: the CRD must say what the Go types
// say, the role what the reconciler's markers say.
func TestCRDsCurrent(t *testing.T) {
	gen, err := exec.LookPath("controller-gen")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		gen = filepath.Join(string(bytes.TrimSpace(gopath)), "bin", "controller-gen")
		if _, err := os.Stat(gen); err != nil {
			testutil.Missing(t, "controller-gen not found (go install sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0; .ci/run does)")
		}
	}
	out := t.TempDir()
	cmd := exec.Command(gen, "crd", "paths=.", "output:crd:dir="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	// The operator's ClusterRole, from the reconciler's rbac markers.
	rbac := t.TempDir()
	cmd = exec.Command(gen, "rbac:roleName=sentinel-operator", "paths=../../controller", "output:rbac:dir="+rbac)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen rbac: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(filepath.Join(rbac, "role.yaml"))
	for _, f := range []string{filepath.Join(crdDir, "..", "rbac", "role.yaml"), filepath.Join(chartFiles, "operator", "role.yaml")} {
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run go generate ./operator/api/v1alpha1 (%v)", f, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	if len(files) == 0 {
		t.Fatal("controller-gen wrote no CRD")
	}
	for _, f := range files {
		want, _ := os.ReadFile(f)
		for _, dir := range []string{crdDir, filepath.Join(chartFiles, "crds")} {
			got, err := os.ReadFile(filepath.Join(dir, filepath.Base(f)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s/%s is out of date: run go generate ./operator/api/v1alpha1 (%v)", dir, filepath.Base(f), err)
			}
		}
	}
}

func TestNames(t *testing.T) {
	u := &SentinelUpstream{}
	u.Name, u.Spec.ProxyRef.Name = "web", "edge"
	if u.ID() != "web" || u.StateName() != "edge-state" {
		t.Fatal(u.ID(), u.StateName())
	}
	u.Spec.UpstreamID = "api"
	if u.ID() != "api" {
		t.Fatal(u.ID())
	}
	c := u.DeepCopy()
	c.Spec.Targets = append(c.Spec.Targets, Target{Address: "a:1"})
	if len(u.Spec.Targets) != 0 || c.DeepCopyObject() == nil || (&SentinelUpstreamList{Items: []SentinelUpstream{*c}}).DeepCopyObject() == nil {
		t.Fatal("deep copy")
	}
}
