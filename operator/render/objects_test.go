package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestDeployment: the replicas run hardened (non-root, read-only root,
// no capabilities, no privilege escalation, the runtime's seccomp
// profile), roll one pod at a time without losing one, get the token
// from the generated Secret (or the user's), mount each listener's TLS
// Secret and the admin-api's, and are probed on the ops port.
func TestDeployment(t *testing.T) {
	p := testProxy()
	d := Deployment(p)
	if d.Name != "edge" || d.Namespace != "web" || d.Labels["app.kubernetes.io/managed-by"] != "sentinel-operator" {
		t.Errorf("meta: %+v", d.ObjectMeta)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("default replicas: %v, want 2", d.Spec.Replicas)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("rolling update: %+v", d.Spec.Strategy)
	}
	for k, v := range Selector(p) {
		if d.Spec.Selector.MatchLabels[k] != v || d.Spec.Template.Labels[k] != v {
			t.Errorf("selector label %s=%s missing", k, v)
		}
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "edge-sentinel" || pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("pod: service account %q, service links %v", pod.ServiceAccountName, pod.EnableServiceLinks)
	}
	if sc := pod.SecurityContext; sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != 65532 || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context: %+v", sc)
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context: %+v", sc)
	}
	if c.Image != p.Spec.Image || c.Args[len(c.Args)-1] != "/etc/sentinel/config/"+ConfigKey {
		t.Errorf("container: image %q args %v", c.Image, c.Args)
	}
	ports := map[string]int32{}
	for _, cp := range c.Ports {
		ports[cp.Name] = cp.ContainerPort
	}
	if ports["main"] != 8080 || ports["main-tls"] != 8443 || ports["ops"] != MetricsPort(p) || ports["admin-api"] != AdminPort(p) {
		t.Errorf("ports: %v", ports)
	}
	for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Port != intstr.FromString("ops") {
			t.Errorf("%s probe: %+v", name, pr)
		}
	}
	var token *corev1.SecretKeySelector
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.Name == EnvToken {
			token = e.ValueFrom.SecretKeyRef
		}
	}
	if token == nil || token.Name != "edge"+v1alpha1.AdminSuffix || token.Key != "token" || env["XDG_DATA_HOME"] != "/data" || env["HOME"] != "/tmp" {
		t.Errorf("env: %v, token %+v", env, token)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["tls-main-tls"] != TLSDir("main-tls") || mounts["admin-tls"] != AdminTLSDir || mounts["tls-main"] != "" || mounts["config"] == "" {
		t.Errorf("mounts: %v", mounts)
	}
	secrets := map[string]string{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if secrets["tls-main-tls"] != "edge-tls" || secrets["admin-tls"] != "edge-admin-tls" {
		t.Errorf("secret volumes: %v", secrets)
	}

	// With autoscaling the HPA owns the replica count; set replicas are
	// kept; a token Secret of the user's own is read instead.
	p.Spec.Autoscaling = &v1alpha1.Autoscaling{MaxReplicas: 5}
	if r := Deployment(p).Spec.Replicas; r != nil {
		t.Errorf("replicas with autoscaling: %d, want unset", *r)
	}
	p.Spec.Replicas = ptr.To[int32](3)
	p.Spec.AdminAPI.TokenSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "mine"}, Key: "k"}
	d = Deployment(p)
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas: %d, want 3", *d.Spec.Replicas)
	}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == EnvToken && (e.ValueFrom.SecretKeyRef.Name != "mine" || e.ValueFrom.SecretKeyRef.Key != "k") {
			t.Errorf("token from the user's Secret: %+v", e.ValueFrom.SecretKeyRef)
		}
	}
	if s := Secret(p, "x"); s != nil {
		t.Errorf("a Secret generated while tokenSecretRef names the user's: %+v", s)
	}
}

// TestServicesAndSecret: the main Service publishes the listeners
// (ClusterIP unless told), the ops Service the ops and admin-api ports
// of every replica, ready or not; the generated token Secret holds the
// token under the key the pods read.
func TestServicesAndSecret(t *testing.T) {
	p := testProxy()
	main, ops := Services(p)
	if main.Spec.Type != corev1.ServiceTypeClusterIP || len(main.Spec.Ports) != 2 || main.Spec.Ports[1].TargetPort != intstr.FromString("main-tls") {
		t.Errorf("main Service: %+v", main.Spec)
	}
	if ops.Name != "edge"+v1alpha1.OpsSuffix || !ops.Spec.PublishNotReadyAddresses || len(ops.Spec.Ports) != 2 || ops.Spec.Ports[1].Port != AdminPort(p) {
		t.Errorf("ops Service: %s %+v", ops.Name, ops.Spec)
	}
	p.Spec.ServiceType = corev1.ServiceTypeLoadBalancer
	if main, _ := Services(p); main.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("service type: %s", main.Spec.Type)
	}
	s := Secret(p, "tok")
	if name, key := TokenSecret(p); s == nil || s.Name != name || string(s.Data[key]) != "tok" {
		t.Errorf("token Secret: %+v", s)
	}
	cm := ConfigMap(p, &Config{Text: "routes { }", Revision: "r1"})
	if cm.Name != "edge"+v1alpha1.ConfigSuffix || cm.Data[ConfigKey] != "routes { }" || cm.Annotations[RevisionAnnotation] != "r1" {
		t.Errorf("ConfigMap: %+v", cm)
	}
}

// TestOptionalObjects: the PDB, HPA and ServiceMonitor exist only when
// asked for; the HPA's minimum replicas and CPU target are at least 1,
// and the ServiceMonitor scrapes the ops port every 30 s unless told.
func TestOptionalObjects(t *testing.T) {
	p := testProxy()
	if PodDisruptionBudget(p) != nil || HorizontalPodAutoscaler(p) != nil || ServiceMonitor(p) != nil {
		t.Fatal("optional objects rendered without being asked for")
	}
	p.Spec.Disruption = &v1alpha1.Disruption{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	if pdb := PodDisruptionBudget(p); pdb == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "edge" {
		t.Errorf("PDB: %+v", pdb)
	}
	p.Spec.Autoscaling = &v1alpha1.Autoscaling{MaxReplicas: 4}
	hpa := HorizontalPodAutoscaler(p)
	if hpa == nil || *hpa.Spec.MinReplicas != 1 || hpa.Spec.MaxReplicas != 4 || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 1 || hpa.Spec.ScaleTargetRef.Name != "edge" {
		t.Errorf("HPA: %+v", hpa)
	}
	p.Spec.ServiceMonitor = &v1alpha1.ServiceMonitor{}
	sm := ServiceMonitor(p)
	ep := sm.Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if sm.GetKind() != "ServiceMonitor" || sm.GetNamespace() != "web" || ep["interval"] != "30s" || ep["port"] != "ops" {
		t.Errorf("ServiceMonitor: %v", sm.Object)
	}
	p.Spec.ServiceMonitor.Interval = "10s"
	ep = ServiceMonitor(p).Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if ep["interval"] != "10s" {
		t.Errorf("ServiceMonitor interval: %v", ep["interval"])
	}
}
