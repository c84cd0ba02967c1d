package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a SentinelUpstream.
const (
	// ConditionReady is True when the targets are in the proxy's state.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a change is being written.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the upstream cannot be served as
	// specified (no Service, no ready endpoint, the state unusable).
	ConditionDegraded = "Degraded"
)

// Finalizer is the finalizer that removes an upstream from the proxy's
// state before its SentinelUpstream goes away.
const Finalizer = "sentinel.sentinel-proxy.io/state"

// StateSuffix makes a proxy's state ConfigMap name: "<proxy>-state".
const StateSuffix = "-state"

// ProxyReference names the Sentinel proxy an upstream belongs to.
type ProxyReference struct {
	// Name of the proxy. Its API-made state is the ConfigMap
	// "<name>-state" in the SentinelUpstream's namespace, which its
	// replicas watch (admin-api.fleet.kubernetes).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=247
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// Target is a static target.
type Target struct {
	// Address is host:port (an IP, [IPv6] or a DNS name, and a port).
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.matches('^(\\\\[[0-9a-fA-F:.]+\\\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$')",message="address must be host:port, e.g. 10.0.0.1:8080 or [fd00::1]:8080"
	Address string `json:"address"`
	// Weight is the target's share for weighted policies.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// ServiceTargets takes an upstream's targets from a Service's
// EndpointSlices: every ready endpoint is a target; a terminating one
// that still serves is drained.
// +kubebuilder:validation:XValidation:rule="has(self.port) != has(self.portName)",message="give exactly one of port (a number) or portName"
type ServiceTargets struct {
	// Name of the Service, in the SentinelUpstream's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Port is the EndpointSlice port number (the container's port).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
	// PortName is the Service port's name, as the EndpointSlices list it.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	PortName *string `json:"portName,omitempty"`
	// Weight of every endpoint.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// SentinelUpstreamSpec is an upstream's desired targets in one proxy.
// +kubebuilder:validation:XValidation:rule="has(self.targets) != has(self.service)",message="give exactly one of targets (static) or service (from its EndpointSlices)"
// +kubebuilder:validation:XValidation:rule="has(self.upstreamID) == has(oldSelf.upstreamID) && (!has(self.upstreamID) || self.upstreamID == oldSelf.upstreamID)",message="upstreamID cannot change: create another SentinelUpstream"
type SentinelUpstreamSpec struct {
	// ProxyRef selects the proxy.
	ProxyRef ProxyReference `json:"proxyRef"`
	// UpstreamID is the upstream's id in the proxy's configuration
	// (upstreams { upstream "<id>" }); default: the object's name. An
	// id the configuration does not declare makes an API upstream.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	UpstreamID string `json:"upstreamID,omitempty"`
	// Targets are static targets.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	// +listType=map
	// +listMapKey=address
	// +optional
	Targets []Target `json:"targets,omitempty"`
	// Service takes the targets from a Service's EndpointSlices.
	// +optional
	Service *ServiceTargets `json:"service,omitempty"`
}

// SentinelUpstreamStatus is what the operator last did.
type SentinelUpstreamStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Ready, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Targets is how many targets are in the proxy's state (active and
	// draining).
	// +optional
	Targets int32 `json:"targets,omitempty"`
	// StateRevision is the resourceVersion of the state ConfigMap that
	// holds them.
	// +optional
	StateRevision string `json:"stateRevision,omitempty"`
}

// SentinelUpstream is one upstream of a Sentinel proxy whose targets the
// cluster declares: the operator writes them into the proxy's shared
// state, and every replica routes by them without a reload.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=su,categories=sentinel
// +kubebuilder:printcolumn:name="Proxy",type=string,JSONPath=`.spec.proxyRef.name`
// +kubebuilder:printcolumn:name="Targets",type=integer,JSONPath=`.status.targets`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SentinelUpstream struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SentinelUpstreamSpec   `json:"spec"`
	Status SentinelUpstreamStatus `json:"status,omitempty"`
}

// ID returns the upstream's id in the proxy.
func (u *SentinelUpstream) ID() string {
	if u.Spec.UpstreamID != "" {
		return u.Spec.UpstreamID
	}
	return u.Name
}

// StateName returns the name of the proxy's state ConfigMap.
func (u *SentinelUpstream) StateName() string { return u.Spec.ProxyRef.Name + StateSuffix }

// SentinelUpstreamList is a list of SentinelUpstreams.
// +kubebuilder:object:root=true
type SentinelUpstreamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SentinelUpstream `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SentinelUpstream{}, &SentinelUpstreamList{})
}
