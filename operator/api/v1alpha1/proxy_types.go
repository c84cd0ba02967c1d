package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Suffixes of the objects the operator makes for a SentinelProxy "<name>".
const (
	// ConfigSuffix names the ConfigMap holding sentinel.kdl.
	ConfigSuffix = "-config"
	// AdminSuffix names the Secret holding the admin-api token (when
	// spec.adminAPI.tokenSecretRef is not given).
	AdminSuffix = "-admin"
	// OpsSuffix names the Service of the admin-api and metrics ports.
	OpsSuffix = "-ops"
)

// Listener is one port the proxy serves requests on.
// +kubebuilder:validation:XValidation:rule="self.protocol == 'https' ? has(self.tlsSecretName) : !has(self.tlsSecretName)",message="an https listener needs tlsSecretName (a kubernetes.io/tls Secret); an http one takes none"
type Listener struct {
	// Name of the listener (its KDL id, the Service's port name).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// Port the container listens on, and the Service's port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// Protocol is http or https.
	// +kubebuilder:validation:Enum=http;https
	// +kubebuilder:default=http
	// +optional
	Protocol string `json:"protocol,omitempty"`
	// TLSSecretName is the kubernetes.io/tls Secret of an https
	// listener, in the proxy's namespace.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
}

// AdminAPI is the proxy's control API (/api/v1), which the operator
// calls to reload the replicas' configuration. It listens on the pod's
// address: TLS is required (Sentinel refuses a control API off loopback
// without it).
type AdminAPI struct {
	// TLSSecretName is a kubernetes.io/tls Secret (e.g. cert-manager's)
	// whose certificate names the ops Service, <proxy>-ops.<namespace>.svc:
	// the operator checks it with the Secret's ca.crt (or, without one,
	// takes tls.crt as its own CA).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	TLSSecretName string `json:"tlsSecretName"`
	// Port of the control API (on the ops Service).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=9901
	// +optional
	Port int32 `json:"port,omitempty"`
	// TokenSecretRef is the Secret key holding the bearer token (scope
	// admin). Default: the Secret "<proxy>-admin", key "token", which the
	// operator creates with a random token.
	// +optional
	TokenSecretRef *corev1.SecretKeySelector `json:"tokenSecretRef,omitempty"`
}

// Disruption is the proxy's PodDisruptionBudget.
// +kubebuilder:validation:XValidation:rule="has(self.minAvailable) != has(self.maxUnavailable)",message="give exactly one of minAvailable or maxUnavailable"
type Disruption struct {
	// MinAvailable pods during voluntary disruptions.
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`
	// MaxUnavailable pods during voluntary disruptions.
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// Autoscaling is the proxy's HorizontalPodAutoscaler (CPU based).
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type Autoscaling struct {
	// MinReplicas of the Deployment.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=2
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`
	// MaxReplicas of the Deployment.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage is the average CPU use aimed at.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=70
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// ServiceMonitor asks for a Prometheus Operator ServiceMonitor of the
// metrics port (made only when its CRD is installed).
type ServiceMonitor struct {
	// Interval of the scrapes.
	// +kubebuilder:validation:Pattern=`^[0-9]+(ms|s|m)$`
	// +kubebuilder:default="30s"
	// +optional
	Interval string `json:"interval,omitempty"`
}

// SentinelProxySpec is a Sentinel deployment.
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.replicas)",message="give replicas or autoscaling, not both: the HorizontalPodAutoscaler sets the replicas"
type SentinelProxySpec struct {
	// Replicas of the Deployment (default 2; with autoscaling, the HPA's).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
	// Image of the Sentinel container.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`
	// ImagePullPolicy of the container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Listeners the proxy serves requests on (a Service port each).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:XValidation:rule="self.all(l, self.exists_one(m, m.port == l.port))",message="two listeners cannot share a port"
	Listeners []Listener `json:"listeners"`
	// AdminAPI is the control API the operator reloads the replicas with.
	AdminAPI AdminAPI `json:"adminAPI"`
	// MetricsPort serves /metrics and the probes (/health, /ready).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=9090
	// +optional
	MetricsPort int32 `json:"metricsPort,omitempty"`
	// ServiceType of the proxy's Service (default ClusterIP).
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`
	// Resources of the Sentinel container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// Disruption makes a PodDisruptionBudget.
	// +optional
	Disruption *Disruption `json:"disruption,omitempty"`
	// Autoscaling makes a HorizontalPodAutoscaler.
	// +optional
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`
	// ServiceMonitor makes a Prometheus Operator ServiceMonitor.
	// +optional
	ServiceMonitor *ServiceMonitor `json:"serviceMonitor,omitempty"`
	// Config is KDL added to the rendered sentinel.kdl (upstreams,
	// filters, limits…): the blocks merge with the rendered ones.
	// +kubebuilder:validation:MaxLength=262144
	// +optional
	Config string `json:"config,omitempty"`
}

// ReplicaStatus is one replica the operator could not bring to the
// desired configuration.
type ReplicaStatus struct {
	// Address is the replica's control API (pod IP:port).
	Address string `json:"address"`
	// Pod is the replica's pod, when its EndpointSlice names it.
	// +optional
	Pod string `json:"pod,omitempty"`
	// Reason is Unreachable, ReloadFailed or Stale (it applied another
	// revision: the mounted ConfigMap is not updated yet).
	Reason string `json:"reason"`
	// Message says what happened.
	// +optional
	Message string `json:"message,omitempty"`
}

// SentinelProxyStatus is what the operator last did.
type SentinelProxyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Ready, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ConfigRevision is the SHA-256 (hex, first 16 digits) of the
	// rendered sentinel.kdl.
	// +optional
	ConfigRevision string `json:"configRevision,omitempty"`
	// Routes, Agents and Upstreams count the resources rendered.
	// +optional
	Routes int32 `json:"routes,omitempty"`
	// +optional
	Agents int32 `json:"agents,omitempty"`
	// +optional
	Upstreams int32 `json:"upstreams,omitempty"`
	// Replicas is how many replicas the control API was reached on.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// UpdatedReplicas is how many of them applied ConfigRevision.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// NotUpdated lists the replicas that did not apply ConfigRevision.
	// +listType=atomic
	// +optional
	NotUpdated []ReplicaStatus `json:"notUpdated,omitempty"`
}

// SentinelProxy is a Sentinel deployment: the operator renders its
// sentinel.kdl (with the SentinelRoutes and SentinelAgents that select
// it) and reconciles the Deployment, Services, ConfigMap, Secret, PDB,
// HPA and ServiceMonitor, all owned by it; configuration changes reach
// the running replicas through their control API's reload.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sp,categories=sentinel
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.configRevision`
// +kubebuilder:printcolumn:name="Routes",type=integer,JSONPath=`.status.routes`
// +kubebuilder:printcolumn:name="Updated",type=string,JSONPath=`.status.updatedReplicas`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SentinelProxy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SentinelProxySpec   `json:"spec"`
	Status SentinelProxyStatus `json:"status,omitempty"`
}

// SentinelProxyList is a list of SentinelProxies.
// +kubebuilder:object:root=true
type SentinelProxyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SentinelProxy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SentinelProxy{}, &SentinelProxyList{})
}
