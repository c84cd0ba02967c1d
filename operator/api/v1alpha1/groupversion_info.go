// Package v1alpha1 is the API of the Sentinel operator, group
// sentinel.sentinel-proxy.io, version v1alpha1 (docs/operator.md).
//
// +kubebuilder:object:generate=true
// +groupName=sentinel.sentinel-proxy.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

//go:generate controller-gen object paths=.
//go:generate controller-gen crd paths=. output:crd:dir=../../../deploy/operator/crds
//go:generate controller-gen rbac:roleName=sentinel-operator paths=../../controller output:rbac:dir=../../../deploy/operator/rbac
// The Helm chart's copies (operator.enabled installs them):
//go:generate controller-gen crd paths=. output:crd:dir=../../../charts/sentinel/files/crds
//go:generate controller-gen rbac:roleName=sentinel-operator paths=../../controller output:rbac:dir=../../../charts/sentinel/files/operator

var (
	// GroupVersion is the group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "sentinel.sentinel-proxy.io", Version: "v1alpha1"}

	// SchemeBuilder adds these types to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds these types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
