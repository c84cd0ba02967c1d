package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PluginModuleKey is the default key of a SentinelPlugin's module in its
// ConfigMap's binaryData.
const PluginModuleKey = "plugin.wasm"

// PluginConfigMapRef names the ConfigMap, in the SentinelPlugin's
// namespace, whose binaryData holds the WASM module. A ConfigMap holds
// at most 1 MiB (all keys together): a larger module goes into the
// image or a volume (path).
type PluginConfigMapRef struct {
	// Name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// Key of the module in the ConfigMap's binaryData (default
	// plugin.wasm).
	// +kubebuilder:default=plugin.wasm
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// SentinelPluginSpec is one WASM plugin (the sentinel_wasm handler's
// plugin, docs/wasm.md) that Gateway API routes run with an ExtensionRef
// filter (group sentinel.sentinel-proxy.io, kind SentinelPlugin).
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.path)",message="give exactly one module source: configMapRef (a ConfigMap's binaryData) or path (a file in the image or a mounted volume)"
type SentinelPluginSpec struct {
	// ConfigMapRef is a ConfigMap of the plugin's namespace holding the
	// module in binaryData (at most 1 MiB: a ConfigMap's limit). The
	// Gateway controller copies it next to the Gateway's config and its
	// replicas load it from
	// /etc/sentinel/plugins/<namespace>/<name>/plugin.wasm.
	// +optional
	ConfigMapRef *PluginConfigMapRef `json:"configMapRef,omitempty"`
	// Path is the module's file in the replicas (the image or a volume
	// mounted by hand).
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	Path string `json:"path,omitempty"`
	// SHA256 pins the module (64 hex digits): another module fails the
	// load (and, for a configMapRef, the controller refuses it first:
	// the route's ResolvedRefs is False).
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	// +optional
	SHA256 string `json:"sha256,omitempty"`
	// ABI is the plugin's ABI, sentinel or http-wasm; detected from the
	// module's imports when absent.
	// +kubebuilder:validation:Enum=sentinel;http-wasm
	// +optional
	ABI string `json:"abi,omitempty"`
	// Config is given to the plugin as JSON (get_config).
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Config *apiextensionsv1.JSON `json:"config,omitempty"`
	// FailureMode is what a trap, a timeout or an instantiation failure
	// does: closed answers 503 (default), open skips the plugin.
	// +kubebuilder:validation:Enum=open;closed
	// +optional
	FailureMode string `json:"failureMode,omitempty"`
	// TimeoutMilliseconds is the deadline of one hook call (default 50).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=60000
	// +optional
	TimeoutMilliseconds *int32 `json:"timeoutMilliseconds,omitempty"`
	// MaxMemory is the memory limit of one instance, e.g. 16MiB
	// (default 16MiB, at most 4GiB).
	// +kubebuilder:validation:Pattern=`^[0-9]+(B|KiB|MiB|GiB)$`
	// +optional
	MaxMemory string `json:"maxMemory,omitempty"`
	// MaxBodyBytes is how many body bytes the body hooks see (default
	// 1048576).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1073741824
	// +optional
	MaxBodyBytes *int64 `json:"maxBodyBytes,omitempty"`
	// MaxIdleInstances is how many idle instances are kept (default 64).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	// +optional
	MaxIdleInstances *int32 `json:"maxIdleInstances,omitempty"`
}

// SentinelPlugin is a WASM plugin that Gateway API HTTPRoutes and
// GRPCRoutes of its namespace run with an ExtensionRef filter. Creating
// one is running code in the Gateway's proxy (sandboxed, but it sees and
// decides the requests of the routes using it): grant it like
// deployments.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=splugin
// +kubebuilder:printcolumn:name="ConfigMap",type=string,JSONPath=`.spec.configMapRef.name`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.spec.path`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SentinelPlugin struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec SentinelPluginSpec `json:"spec"`
}

// SentinelPluginList is a list of SentinelPlugins.
// +kubebuilder:object:root=true
type SentinelPluginList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SentinelPlugin `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SentinelPlugin{}, &SentinelPluginList{})
}
