// Package kubetest starts a real Kubernetes control plane (kube-apiserver
// and etcd, controller-runtime's envtest) for the tests of the Kubernetes
// store and the operator. The binaries cannot be downloaded here: .ci/run
// builds them from Go modules into the user cache directory (see
// /work/shared/reference/envtest-from-source.md); KUBEBUILDER_ASSETS
// overrides where they are looked for.
package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// Versions are the versions of the binaries .ci/run builds.
const Versions = "k8s-v1.37.2-etcd-v3.7.3"

// Assets returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS when set, else <user cache>/sentinel-envtest/<Versions>.
// It returns an error naming the directory when a binary is missing.
func Assets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no user cache directory: %w", err)
		}
		dir = filepath.Join(cache, "sentinel-envtest", Versions)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return dir, fmt.Errorf("envtest binary %s not found in %s (.ci/run builds them; or set KUBEBUILDER_ASSETS)", bin, dir)
		}
	}
	return dir, nil
}

// Env is a running control plane shared by the tests of a package.
type Env struct {
	*envtest.Environment
	// Config is an admin's client configuration.
	Config *rest.Config
}

// absent is why the control plane did not start, for Need.
var errAbsent = errors.New("not started")

// Main runs a package's tests with one control plane (CRDs from crdDirs
// installed) in *env: nil when the binaries are absent, which Need turns
// into a skip (a failure under CI). It prints one line when they are
// absent and exits with the tests' code.
func Main(m *testing.M, env **Env, crdDirs ...string) {
	os.Exit(run(m, env, crdDirs))
}

func run(m *testing.M, env **Env, crdDirs []string) int {
	dir, err := Assets()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v: the tests against a real kube-apiserver are skipped\n", err)
		startErr = err
		return m.Run()
	}
	e := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: len(crdDirs) > 0,
	}
	// Loopback only: without an advertise address the API server looks for
	// a default route (absent in a test's own network namespace), and a
	// loopback one needs the endpoint reconciler off (the tests do not use
	// the `kubernetes` Service's endpoints).
	args := e.ControlPlane.GetAPIServer().Configure()
	args.Set("advertise-address", "127.0.0.1")
	args.Set("endpoint-reconciler-type", "none")
	cfg, err := e.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: starting kube-apiserver and etcd from %s: %v\n", dir, err)
		return 1
	}
	*env = &Env{Environment: e, Config: cfg}
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: stopping the control plane: %v\n", err)
	}
	return code
}

// startErr is why Main did not start a control plane.
var startErr = errAbsent

// Need skips the test (fails it under CI) when env is nil.
func Need(tb testing.TB, env *Env) {
	tb.Helper()
	if env == nil {
		testutil.Missing(tb, "no kube-apiserver: %v", startErr)
	}
}

// Kubeconfig writes a kubeconfig for user (a member of groups) into dir
// and returns its path. The user's rights are what RBAC gives it.
func (e *Env) Kubeconfig(tb testing.TB, dir, user string, groups ...string) string {
	tb.Helper()
	u, err := e.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		tb.Fatalf("adding user %s: %v", user, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, user+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
