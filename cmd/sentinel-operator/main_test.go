package main

import (
	"strings"
	"testing"
)

func TestRunErrors(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for args, want := range map[string]string{
		"--bogus":                               "flag provided but not defined: -bogus",
		"extra":                                 `unexpected arguments ["extra"]`,
		"--namespaces a,b --leader-elect=false": "no Kubernetes configuration",
		"--gateway-api --leader-elect=false":    "no Kubernetes configuration",
	} {
		if err := run(strings.Fields(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
}
