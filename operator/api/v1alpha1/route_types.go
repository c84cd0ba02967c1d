package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProxySelection selects the SentinelProxies a route or an agent goes
// into: one by name, or every proxy of the namespace whose labels match.
// +kubebuilder:validation:XValidation:rule="has(self.proxyRef) != has(self.proxySelector)",message="give exactly one of proxyRef (a SentinelProxy's name) or proxySelector (labels of SentinelProxies)"
type ProxySelection struct {
	// ProxyRef names a SentinelProxy of the namespace.
	// +optional
	ProxyRef *ProxyReference `json:"proxyRef,omitempty"`
	// ProxySelector selects the SentinelProxies of the namespace by label.
	// +optional
	ProxySelector *metav1.LabelSelector `json:"proxySelector,omitempty"`
}

// HeaderMatch matches a request header.
type HeaderMatch struct {
	// Name of the header.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	Name string `json:"name"`
	// Value it must have; absent: the header must be present.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value *string `json:"value,omitempty"`
}

// RouteMatch is the route's matches block; every given condition must hold.
// +kubebuilder:validation:XValidation:rule="!(has(self.path) && has(self.pathPrefix))",message="give path (exact) or pathPrefix, not both"
type RouteMatch struct {
	// PathPrefix matches paths starting with it.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="pathPrefix must start with /"
	// +optional
	PathPrefix string `json:"pathPrefix,omitempty"`
	// Path matches one path exactly.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="path must start with /"
	// +optional
	Path string `json:"path,omitempty"`
	// Hosts are the request hosts (any of them; *.example.com wildcards).
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$`
	// +listType=set
	// +optional
	Hosts []string `json:"hosts,omitempty"`
	// Methods are the request methods (any of them).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Enum=GET;HEAD;POST;PUT;PATCH;DELETE;OPTIONS;CONNECT;TRACE
	// +listType=set
	// +optional
	Methods []string `json:"methods,omitempty"`
	// Headers the request must carry.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Headers []HeaderMatch `json:"headers,omitempty"`
}

// SentinelRouteSpec is one route block.
// +kubebuilder:validation:XValidation:rule="[has(self.upstream), has(self.builtinHandler)].filter(x, x).size() == 1",message="give exactly one of upstream (an upstream id) or builtinHandler"
// +kubebuilder:validation:XValidation:rule="has(self.routeID) == has(oldSelf.routeID) && (!has(self.routeID) || self.routeID == oldSelf.routeID)",message="routeID cannot change: create another SentinelRoute"
type SentinelRouteSpec struct {
	ProxySelection `json:",inline"`
	// RouteID is the route's id in the proxy; default: the object's name.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	RouteID string `json:"routeID,omitempty"`
	// Priority orders the routes (higher first; 10 low, 50 normal, 100
	// high, 1000 critical).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	Priority *int32 `json:"priority,omitempty"`
	// Matches selects the requests; empty: every request.
	// +optional
	Matches RouteMatch `json:"matches,omitempty"`
	// Upstream is the id of the upstream the route proxies to: one of a
	// SentinelUpstream of the proxy, or declared in the proxy's config.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	Upstream string `json:"upstream,omitempty"`
	// BuiltinHandler answers itself: status, health, ready, not-found,
	// upstreams, config or metrics.
	// +kubebuilder:validation:Enum=status;health;ready;not-found;upstreams;config;metrics
	// +optional
	BuiltinHandler string `json:"builtinHandler,omitempty"`
	// Agents are SentinelAgent ids consulted on each request, in order
	// (the route's agent filters).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +listType=atomic
	// +optional
	Agents []string `json:"agents,omitempty"`
	// Filters are ids of filters declared in the proxy's config, in order
	// (after the agents).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +listType=atomic
	// +optional
	Filters []string `json:"filters,omitempty"`
	// TimeoutSeconds bounds a request (policies.timeout-secs).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +optional
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// RenderStatus is the status of a route or agent: whether it is in the
// configuration of each proxy it selects.
type RenderStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Ready, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Proxies are the SentinelProxies whose configuration holds it.
	// +listType=set
	// +optional
	Proxies []string `json:"proxies,omitempty"`
}

// SentinelRoute is one route of the SentinelProxies it selects: the
// operator renders it into their sentinel.kdl and reloads their replicas.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sr,categories=sentinel
// +kubebuilder:printcolumn:name="Upstream",type=string,JSONPath=`.spec.upstream`
// +kubebuilder:printcolumn:name="Proxies",type=string,JSONPath=`.status.proxies`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SentinelRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SentinelRouteSpec `json:"spec"`
	Status RenderStatus      `json:"status,omitempty"`
}

// ID returns the route's id in the proxy.
func (r *SentinelRoute) ID() string {
	if r.Spec.RouteID != "" {
		return r.Spec.RouteID
	}
	return r.Name
}

// SentinelRouteList is a list of SentinelRoutes.
// +kubebuilder:object:root=true
type SentinelRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SentinelRoute `json:"items"`
}

// SentinelAgentSpec is one agent block (protocol v2) and the agent
// filter routes name it by.
// +kubebuilder:validation:XValidation:rule="has(self.unixSocket) != has(self.grpc)",message="give exactly one transport: unixSocket (a path) or grpc (an http:// or https:// address)"
// +kubebuilder:validation:XValidation:rule="has(self.agentID) == has(oldSelf.agentID) && (!has(self.agentID) || self.agentID == oldSelf.agentID)",message="agentID cannot change: create another SentinelAgent"
type SentinelAgentSpec struct {
	ProxySelection `json:",inline"`
	// AgentID is the agent's id in the proxy, and its filter's; default:
	// the object's name.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	AgentID string `json:"agentID,omitempty"`
	// Type is informational (waf, auth, rate_limit, custom).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +optional
	Type string `json:"type,omitempty"`
	// UnixSocket is the agent's socket path (in a volume the pods share).
	// +kubebuilder:validation:MaxLength=108
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="unixSocket must be an absolute path"
	// +optional
	UnixSocket string `json:"unixSocket,omitempty"`
	// GRPC is the agent's address, http://host:port or https://host:port.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[A-Za-z0-9.\\\\[\\\\]:-]+:[0-9]{1,5}$')",message="grpc must be http://host:port or https://host:port"
	// +optional
	GRPC string `json:"grpc,omitempty"`
	// Events sent to the agent (default request_headers).
	// +kubebuilder:validation:MaxItems=7
	// +kubebuilder:validation:items:Enum=request_headers;request_body;response_headers;response_body;request_complete;websocket_frame;guardrail
	// +listType=set
	// +optional
	Events []string `json:"events,omitempty"`
	// TimeoutMilliseconds of each call (default 1000).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600000
	// +optional
	TimeoutMilliseconds *int32 `json:"timeoutMilliseconds,omitempty"`
	// FailureMode is what a failed call does: open (the request goes
	// on, default) or closed (it is refused).
	// +kubebuilder:validation:Enum=open;closed
	// +optional
	FailureMode string `json:"failureMode,omitempty"`
	// MaxRequestBodyBytes is the largest request body sent.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1073741824
	// +optional
	MaxRequestBodyBytes *int64 `json:"maxRequestBodyBytes,omitempty"`
}

// SentinelAgent is one external agent of the SentinelProxies it
// selects; SentinelRoutes name it in spec.agents.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sa,categories=sentinel
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Proxies",type=string,JSONPath=`.status.proxies`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SentinelAgent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SentinelAgentSpec `json:"spec"`
	Status RenderStatus      `json:"status,omitempty"`
}

// ID returns the agent's id in the proxy.
func (a *SentinelAgent) ID() string {
	if a.Spec.AgentID != "" {
		return a.Spec.AgentID
	}
	return a.Name
}

// SentinelAgentList is a list of SentinelAgents.
// +kubebuilder:object:root=true
type SentinelAgentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SentinelAgent `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SentinelRoute{}, &SentinelRouteList{}, &SentinelAgent{}, &SentinelAgentList{})
}

// Selection returns the proxies the route selects.
func (r *SentinelRoute) Selection() ProxySelection { return r.Spec.ProxySelection }

// RenderState returns the route's status.
func (r *SentinelRoute) RenderState() *RenderStatus { return &r.Status }

// Selection returns the proxies the agent selects.
func (a *SentinelAgent) Selection() ProxySelection { return a.Spec.ProxySelection }

// RenderState returns the agent's status.
func (a *SentinelAgent) RenderState() *RenderStatus { return &a.Status }
