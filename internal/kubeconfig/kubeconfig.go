// Package kubeconfig finds the Kubernetes client configuration of a
// module that talks to the API server (the Kubernetes fleet store and the
// `kubernetes` discovery): a kubeconfig file, or the pod's service
// account in a cluster.
package kubeconfig

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// namespaceFile is where a pod reads its own namespace.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Load returns the client configuration and the default namespace: from
// the kubeconfig file at path (its context kubeContext, or its current
// one when empty), or, when path is empty, the in-cluster configuration
// and the pod's namespace. The namespace is "default" when none is known.
func Load(path, kubeContext string) (*rest.Config, string, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("kubernetes: no kubeconfig given and not in a cluster: %w", err)
		}
		ns := "default"
		if b, err := os.ReadFile(namespaceFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			ns = strings.TrimSpace(string(b))
		}
		return cfg, ns, nil
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: kubeconfig %s: %w", path, err)
	}
	ns, _, err := loader.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return cfg, ns, nil
}
