package render

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// Labels returns the labels of a proxy's objects; Selector the pods'.
func Labels(p *v1alpha1.SentinelProxy) map[string]string {
	l := Selector(p)
	l["app.kubernetes.io/managed-by"] = "sentinel-operator"
	l["app.kubernetes.io/component"] = "proxy"
	return l
}

// Selector returns the labels selecting a proxy's pods.
func Selector(p *v1alpha1.SentinelProxy) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "sentinel", "app.kubernetes.io/instance": p.Name}
}

// TokenSecret returns the Secret name and key of the admin-api token.
func TokenSecret(p *v1alpha1.SentinelProxy) (name, key string) {
	if r := p.Spec.AdminAPI.TokenSecretRef; r != nil {
		return r.Name, r.Key
	}
	return p.Name + v1alpha1.AdminSuffix, "token"
}

// ServiceAccountName is the proxy pods' service account: it may get,
// watch and update the state ConfigMap only (Role and RoleBinding of the
// same name).
func ServiceAccountName(p *v1alpha1.SentinelProxy) string { return p.Name + "-sentinel" }

func meta(p *v1alpha1.SentinelProxy, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: Labels(p)}
}

// ConfigMap holds the rendered sentinel.kdl.
func ConfigMap(p *v1alpha1.SentinelProxy, c *Config) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: meta(p, p.Name+v1alpha1.ConfigSuffix), Data: map[string]string{ConfigKey: c.Text}}
	cm.Annotations = map[string]string{RevisionAnnotation: c.Revision}
	return cm
}

// RevisionAnnotation carries the configuration's revision.
const RevisionAnnotation = "sentinel.sentinel-proxy.io/config-revision"

// Deployment runs the replicas. The configuration is a mounted ConfigMap:
// a change is not a rollout, the operator reloads the running replicas
// once the kubelet has updated their file. Listener ports, TLS Secrets,
// image and resources are in the pod template (a change rolls the pods).
func Deployment(p *v1alpha1.SentinelProxy) *appsv1.Deployment {
	tokenName, tokenKey := TokenSecret(p)
	ports := []corev1.ContainerPort{}
	mounts := []corev1.VolumeMount{{Name: "config", MountPath: "/etc/sentinel/config", ReadOnly: true}, {Name: "data", MountPath: "/data"}, {Name: "tmp", MountPath: "/tmp"}}
	volumes := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.Name + v1alpha1.ConfigSuffix}}}},
		{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "admin-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: p.Spec.AdminAPI.TLSSecretName}}},
	}
	mounts = append(mounts, corev1.VolumeMount{Name: "admin-tls", MountPath: AdminTLSDir, ReadOnly: true})
	for _, l := range p.Spec.Listeners {
		ports = append(ports, corev1.ContainerPort{Name: l.Name, ContainerPort: l.Port, Protocol: corev1.ProtocolTCP})
		if l.TLSSecretName != "" {
			v := "tls-" + l.Name
			volumes = append(volumes, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: l.TLSSecretName}}})
			mounts = append(mounts, corev1.VolumeMount{Name: v, MountPath: TLSDir(l.Name), ReadOnly: true})
		}
	}
	ports = append(ports,
		corev1.ContainerPort{Name: "ops", ContainerPort: MetricsPort(p), Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "admin-api", ContainerPort: AdminPort(p), Protocol: corev1.ProtocolTCP})
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("ops")}}, PeriodSeconds: period}
	}
	replicas := p.Spec.Replicas
	if replicas == nil && p.Spec.Autoscaling == nil {
		replicas = ptr.To[int32](2)
	}
	d := &appsv1.Deployment{
		ObjectMeta: meta(p, p.Name),
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Selector: &metav1.LabelSelector{MatchLabels: Selector(p)},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1)),
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: Labels(p)},
				Spec: corev1.PodSpec{
					ServiceAccountName:           ServiceAccountName(p),
					AutomountServiceAccountToken: ptr.To(true), // the fleet store's in-cluster client
					EnableServiceLinks:           ptr.To(false),
					SecurityContext:              PodSecurityContext(),
					Containers: []corev1.Container{{
						Name:            "sentinel",
						Image:           p.Spec.Image,
						ImagePullPolicy: p.Spec.ImagePullPolicy,
						Command:         []string{"/usr/bin/sentinel"},
						Args:            []string{"run", "--config", "/etc/sentinel/config/" + ConfigKey},
						Ports:           ports,
						Env: append(DataEnv(),
							corev1.EnvVar{Name: EnvToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: tokenName}, Key: tokenKey}}}),
						Resources:       p.Spec.Resources,
						VolumeMounts:    mounts,
						StartupProbe:    probe("/health", 2),
						LivenessProbe:   probe("/healthz", 10),
						ReadinessProbe:  probe("/ready", 5),
						SecurityContext: ContainerSecurityContext(),
					}},
					Volumes: volumes,
				},
			},
		},
	}
	return d
}

// PodSecurityContext is the hardened pod security context of Sentinel's
// replicas (non-root uid/gid 65532, the runtime's seccomp profile); the
// Gateway API controller's Deployments share it.
func PodSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532), FSGroup: ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// ContainerSecurityContext is the hardened security context of the
// sentinel container: no privilege escalation, a read-only root file
// system, no capabilities.
func ContainerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// DataEnv points the sentinel container's data and home directories at
// its writable volumes (/data and /tmp, emptyDirs: the root file system
// is read-only).
func DataEnv() []corev1.EnvVar {
	return []corev1.EnvVar{{Name: "XDG_DATA_HOME", Value: "/data"}, {Name: "XDG_CONFIG_HOME", Value: "/data"}, {Name: "HOME", Value: "/tmp"}}
}

// Services returns the proxy's Service (its listeners) and its ops
// Service (metrics, probes, the admin-api: the operator finds the
// replicas by its EndpointSlices).
func Services(p *v1alpha1.SentinelProxy) (main, ops *corev1.Service) {
	main = &corev1.Service{ObjectMeta: meta(p, p.Name), Spec: corev1.ServiceSpec{Type: p.Spec.ServiceType, Selector: Selector(p)}}
	if main.Spec.Type == "" {
		main.Spec.Type = corev1.ServiceTypeClusterIP
	}
	for _, l := range p.Spec.Listeners {
		main.Spec.Ports = append(main.Spec.Ports, corev1.ServicePort{Name: l.Name, Port: l.Port, TargetPort: intstr.FromString(l.Name), Protocol: corev1.ProtocolTCP})
	}
	ops = &corev1.Service{ObjectMeta: meta(p, p.Name+v1alpha1.OpsSuffix), Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeClusterIP, Selector: Selector(p),
		// The operator reloads every replica, ready or not.
		PublishNotReadyAddresses: true,
		Ports: []corev1.ServicePort{
			{Name: "ops", Port: MetricsPort(p), TargetPort: intstr.FromString("ops"), Protocol: corev1.ProtocolTCP},
			{Name: "admin-api", Port: AdminPort(p), TargetPort: intstr.FromString("admin-api"), Protocol: corev1.ProtocolTCP},
		},
	}}
	return main, ops
}

// Secret holds a generated admin-api token (nil when
// spec.adminAPI.tokenSecretRef names the user's own).
func Secret(p *v1alpha1.SentinelProxy, token string) *corev1.Secret {
	if p.Spec.AdminAPI.TokenSecretRef != nil {
		return nil
	}
	name, key := TokenSecret(p)
	return &corev1.Secret{ObjectMeta: meta(p, name), Type: corev1.SecretTypeOpaque, Data: map[string][]byte{key: []byte(token)}}
}

// PodDisruptionBudget returns the proxy's PDB, or nil.
func PodDisruptionBudget(p *v1alpha1.SentinelProxy) *policyv1.PodDisruptionBudget {
	d := p.Spec.Disruption
	if d == nil {
		return nil
	}
	return &policyv1.PodDisruptionBudget{ObjectMeta: meta(p, p.Name), Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: d.MinAvailable, MaxUnavailable: d.MaxUnavailable, Selector: &metav1.LabelSelector{MatchLabels: Selector(p)},
	}}
}

// HorizontalPodAutoscaler returns the proxy's HPA, or nil.
func HorizontalPodAutoscaler(p *v1alpha1.SentinelProxy) *autoscalingv2.HorizontalPodAutoscaler {
	a := p.Spec.Autoscaling
	if a == nil {
		return nil
	}
	return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta(p, p.Name), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: p.Name},
		MinReplicas:    ptr.To(max(a.MinReplicas, 1)),
		MaxReplicas:    a.MaxReplicas,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(max(a.TargetCPUUtilizationPercentage, 1))},
		}}},
	}}
}

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor.
var ServiceMonitorGVK = struct{ Group, Version, Kind string }{"monitoring.coreos.com", "v1", "ServiceMonitor"}

// ServiceMonitor returns the proxy's ServiceMonitor (unstructured: the
// operator does not depend on the Prometheus Operator's types), or nil.
func ServiceMonitor(p *v1alpha1.SentinelProxy) *unstructured.Unstructured {
	sm := p.Spec.ServiceMonitor
	if sm == nil {
		return nil
	}
	interval := sm.Interval
	if interval == "" {
		interval = "30s"
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ServiceMonitorGVK.Group + "/" + ServiceMonitorGVK.Version,
		"kind":       ServiceMonitorGVK.Kind,
		"spec": map[string]any{
			"selector":  map[string]any{"matchLabels": toAny(Labels(p))},
			"endpoints": []any{map[string]any{"port": "ops", "path": "/metrics", "interval": interval}},
		},
	}}
	u.SetName(p.Name)
	u.SetNamespace(p.Namespace)
	u.SetLabels(Labels(p))
	return u
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
