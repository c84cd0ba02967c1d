package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/repo"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"
)

// TestLintStrict runs `helm lint --strict` on the default values and on
// every value set: any message of warning severity or above fails, and so
// does any informational one (the chart has an icon, a valid
// values.schema.json…).
func TestLintStrict(t *testing.T) {
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			kv := kubeVersion
			linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir, vs.vals, namespace, &kv, false)
			for _, m := range linter.Messages {
				sev := "info"
				if m.Severity >= support.WarningSev {
					sev = "warning or error"
				}
				t.Errorf("helm lint (%s): %s", sev, m.Error())
			}
		})
	}
}

// TestTemplateMatrix renders every value set, decodes every manifest
// strictly into the k8s.io/api types and checks that the objects fit
// together: names, selectors, ports, probes, volumes, secrets, hardening.
func TestTemplateMatrix(t *testing.T) {
	ch := loadChart(t)
	total := 0
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := mustRender(t, ch, vs.vals)
			total += len(r.objects)
			checkObjects(t, r)
			checkDeployment(t, r)
			checkServices(t, r)
			checkOptional(t, r)
			if strings.TrimSpace(r.notes) == "" || strings.Contains(r.notes, "WARNING") {
				t.Errorf("NOTES.txt: empty or warns:\n%s", r.notes)
			}
		})
	}
	t.Logf("%d value sets, %d manifests decoded strictly", len(valueSets(t)), total)
}

// checkObjects: names, namespaces and labels of every object.
func checkObjects(t *testing.T, r *rendered) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range r.objects {
		key := o.meta.Kind + "/" + o.name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		for _, msg := range validation.IsDNS1123Label(o.name) {
			t.Errorf("%s: name %q: %s", key, o.name, msg)
		}
		if o.ns == "" {
			t.Errorf("%s: no namespace", key)
		}
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"} {
			if o.labels[l] == "" {
				t.Errorf("%s: label %s missing", key, l)
			}
		}
	}
}

// podInfo is what the other checks need from the Deployment.
type podInfo struct {
	deploy    *appsv1.Deployment
	container corev1.Container
	labels    map[string]string
}

func pod(t *testing.T, r *rendered) podInfo {
	t.Helper()
	d := one[*appsv1.Deployment](t, r)
	var c *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "sentinel" {
			c = &d.Spec.Template.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("no sentinel container")
	}
	return podInfo{deploy: d, container: *c, labels: d.Spec.Template.Labels}
}

// containerPort resolves a port (name or number) of the container.
func containerPort(c corev1.Container, port intstr.IntOrString, proto corev1.Protocol) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.Protocol != proto {
			continue
		}
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector: %v", err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

func checkDeployment(t *testing.T, r *rendered) {
	t.Helper()
	p := pod(t, r)
	d, c, spec := p.deploy, p.container, p.deploy.Spec.Template.Spec

	if !selects(t, d.Spec.Selector, p.labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector, p.labels)
	}
	if r.boolean("autoscaling.enabled") != (d.Spec.Replicas == nil) {
		t.Errorf("replicas %v with autoscaling.enabled=%v", d.Spec.Replicas, r.boolean("autoscaling.enabled"))
	}
	if d.Spec.Replicas != nil && int(*d.Spec.Replicas) != r.integer(t, "replicaCount") {
		t.Errorf("replicas %d, replicaCount %d", *d.Spec.Replicas, r.integer(t, "replicaCount"))
	}

	// Image and command.
	wantImage := r.str("image.repository") + ":" + firstNonEmpty(r.str("image.tag"), "0.1.0")
	if dg := r.str("image.digest"); dg != "" {
		wantImage += "@" + dg
	}
	if c.Image != wantImage {
		t.Errorf("image %q, want %q", c.Image, wantImage)
	}
	if got := strings.Join(append(append([]string{}, c.Command...), c.Args...), " "); !strings.HasPrefix(got, "/usr/bin/sentinel run --config /etc/sentinel/sentinel.kdl") {
		t.Errorf("command %q", got)
	}

	// Hardening.
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod security context does not run as non-root: %+v", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		(sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("container security context not hardened: %+v", sc)
	}
	if r.value("securityContext.capabilities.add") == nil && sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities added by default: %v", sc.Capabilities.Add)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken != r.boolean("serviceAccount.automountServiceAccountToken") {
		t.Errorf("automountServiceAccountToken %v", spec.AutomountServiceAccountToken)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	if len(spec.TopologySpreadConstraints) == 0 {
		t.Error("no topology spread constraints")
	}
	for _, tsc := range spec.TopologySpreadConstraints {
		if !selects(t, tsc.LabelSelector, p.labels) {
			t.Errorf("topology spread on %s does not select the pods", tsc.TopologyKey)
		}
	}

	// Writable directories of a read-only root filesystem.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("volume mount %s: no volume %q", m.MountPath, m.Name)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for name, dir := range map[string]string{"XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/config", "HOME": "/tmp"} {
		if env[name] != dir {
			t.Errorf("env %s=%q, want %s", name, env[name], dir)
		}
		m, ok := mounts[dir]
		if !ok || m.ReadOnly || volumes[m.Name].EmptyDir == nil {
			t.Errorf("%s is not a writable emptyDir mount", dir)
		}
	}
	cfg, ok := mounts["/etc/sentinel"]
	if !ok || !cfg.ReadOnly || volumes[cfg.Name].Projected == nil {
		t.Fatalf("/etc/sentinel is not a read-only projected volume: %+v", cfg)
	}
	checkConfigVolume(t, r, volumes[cfg.Name].Projected, psc)

	// Control-plane token.
	var tokenEnv *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "ADMIN_API_TOKEN" {
			tokenEnv = &c.Env[i]
		}
	}
	if r.boolean("controlPlane.enabled") != (tokenEnv != nil) {
		t.Errorf("ADMIN_API_TOKEN %v with controlPlane.enabled=%v", tokenEnv, r.boolean("controlPlane.enabled"))
	}
	if tokenEnv != nil {
		ref := tokenEnv.ValueFrom.SecretKeyRef
		checkSecretKey(t, r, ref.Name, ref.Key, r.str("controlPlane.existingSecret"))
	}

	// Ports and probes.
	wantPorts := map[string]int{"http": r.integer(t, "service.httpTargetPort"), "metrics": r.integer(t, "service.metricsTargetPort")}
	if r.boolean("tls.enabled") {
		wantPorts["https"] = r.integer(t, "service.httpsTargetPort")
	}
	if r.boolean("service.http3.enabled") {
		wantPorts["http3"] = r.integer(t, "service.httpsTargetPort")
	}
	if r.boolean("controlPlane.enabled") {
		wantPorts["control-plane"] = r.integer(t, "controlPlane.port")
	}
	if len(c.Ports) != len(wantPorts) {
		t.Errorf("container ports %v, want %v", c.Ports, wantPorts)
	}
	for _, cp := range c.Ports {
		if int(cp.ContainerPort) != wantPorts[cp.Name] {
			t.Errorf("container port %s=%d, want %d", cp.Name, cp.ContainerPort, wantPorts[cp.Name])
		}
	}
	probes := map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	for kind, pr := range probes {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s probe: not an HTTP probe: %+v", kind, pr)
			continue
		}
		cp, ok := containerPort(c, pr.HTTPGet.Port, corev1.ProtocolTCP)
		if !ok || cp.Name != "metrics" {
			t.Errorf("%s probe port %s is not the ops (metrics) container port", kind, pr.HTTPGet.Port.String())
		}
		if want := r.str(kind + "Probe.httpGet.path"); pr.HTTPGet.Path != want {
			t.Errorf("%s probe path %s, values say %s", kind, pr.HTTPGet.Path, want)
		}
	}

	// Graceful termination: preStop drain, then the config's graceful
	// shutdown, within the pod's grace period.
	drain := r.integer(t, "shutdown.drainSeconds")
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || int(c.Lifecycle.PreStop.Sleep.Seconds) != drain {
		t.Errorf("preStop: %+v, want sleep %d", c.Lifecycle, drain)
	}
	graceful := r.integer(t, "shutdown.gracefulTimeoutSeconds")
	if kdl := r.configText(t); kdl != "" {
		g, ok := gracefulSeconds(kdl)
		if !ok {
			t.Error("rendered config has no graceful-shutdown-timeout-secs")
		}
		graceful = g
	}
	if spec.TerminationGracePeriodSeconds == nil || int(*spec.TerminationGracePeriodSeconds) != drain+graceful+5 {
		t.Errorf("terminationGracePeriodSeconds %v, want drain %d + graceful %d + 5", spec.TerminationGracePeriodSeconds, drain, graceful)
	}

	// Config changes roll the pods.
	ann := d.Spec.Template.Annotations
	if (r.configText(t) != "") != (ann["checksum/config"] != "") {
		t.Errorf("checksum/config annotation %q", ann["checksum/config"])
	}
	if len(all[*corev1.Secret](r)) > 0 && ann["checksum/secret"] == "" {
		t.Error("no checksum/secret annotation")
	}
	if sa := spec.ServiceAccountName; r.boolean("serviceAccount.create") {
		if got := one[*corev1.ServiceAccount](t, r); got.Name != sa {
			t.Errorf("serviceAccountName %q, ServiceAccount %q", sa, got.Name)
		}
	} else if len(all[*corev1.ServiceAccount](r)) != 0 {
		t.Error("ServiceAccount rendered with serviceAccount.create=false")
	}
}

// checkConfigVolume: the projected volume brings sentinel.kdl from the
// rendered (or existing) ConfigMap and, with TLS, the certificate from the
// chart's (or the existing) Secret.
func checkConfigVolume(t *testing.T, r *rendered, pv *corev1.ProjectedVolumeSource, psc *corev1.PodSecurityContext) {
	t.Helper()
	var cmName, cmKey string
	var tlsPaths []string
	for _, src := range pv.Sources {
		switch {
		case src.ConfigMap != nil:
			cmName = src.ConfigMap.Name
			for _, it := range src.ConfigMap.Items {
				if it.Path == "sentinel.kdl" {
					cmKey = it.Key
				}
			}
		case src.Secret != nil:
			for _, it := range src.Secret.Items {
				checkSecretKey(t, r, src.Secret.Name, it.Key, r.str("tls.existingSecret"))
				tlsPaths = append(tlsPaths, it.Path)
				if it.Key != "tls.key" {
					continue
				}
				// The key is readable by the process: through the pod's
				// fsGroup (0440), else by all (0444, root-owned files).
				want := int32(0o444)
				if psc != nil && psc.FSGroup != nil {
					want = 0o440
				}
				if it.Mode == nil || *it.Mode != want {
					t.Errorf("tls.key mode %v, want %#o", it.Mode, want)
				}
			}
		}
	}
	if existing := r.str("config.existingConfigMap"); existing != "" {
		if cmName != existing || cmKey != r.str("config.existingConfigMapKey") {
			t.Errorf("config from %s/%s, want existing %s/%s", cmName, cmKey, existing, r.str("config.existingConfigMapKey"))
		}
		if len(all[*corev1.ConfigMap](r)) != 0 {
			t.Error("a ConfigMap is rendered although config.existingConfigMap is set")
		}
	} else if cm := one[*corev1.ConfigMap](t, r); cmName != cm.Name || cmKey != "sentinel.kdl" {
		t.Errorf("config from %s/%s, rendered ConfigMap %s", cmName, cmKey, cm.Name)
	}
	sort.Strings(tlsPaths)
	want := ""
	if r.boolean("tls.enabled") {
		want = "tls/tls.crt tls/tls.key"
	}
	if got := strings.Join(tlsPaths, " "); got != want {
		t.Errorf("TLS files %q, want %q", got, want)
	}
}

// checkSecretKey: a referenced Secret key exists in the chart's Secret,
// or the Secret is the named existing one.
func checkSecretKey(t *testing.T, r *rendered, name, key, existing string) {
	t.Helper()
	if existing != "" && name == existing {
		return
	}
	for _, s := range all[*corev1.Secret](r) {
		if s.Name == name {
			if len(s.Data[key]) == 0 {
				t.Errorf("Secret %s: key %s missing or empty", name, key)
			}
			return
		}
	}
	t.Errorf("Secret %s (key %s) is neither rendered nor an existing Secret", name, key)
}

func checkServices(t *testing.T, r *rendered) {
	t.Helper()
	p := pod(t, r)
	svcs := all[*corev1.Service](r)
	if len(svcs) != 2 {
		t.Fatalf("%d Services, want the traffic Service and the -ops Service", len(svcs))
	}
	var main, ops *corev1.Service
	for _, s := range svcs {
		if strings.HasSuffix(s.Name, "-ops") {
			ops = s
		} else {
			main = s
		}
	}
	if main == nil || ops == nil {
		t.Fatalf("Services %s, %s", svcs[0].Name, svcs[1].Name)
	}
	for _, s := range svcs {
		if !selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, p.labels) {
			t.Errorf("Service %s selects no pod", s.Name)
		}
		for _, sp := range s.Spec.Ports {
			cp, ok := containerPort(p.container, sp.TargetPort, sp.Protocol)
			if !ok {
				t.Errorf("Service %s port %s: target %s/%s is no container port", s.Name, sp.Name, sp.TargetPort.String(), sp.Protocol)
			} else if cp.Name != sp.Name {
				t.Errorf("Service %s port %s targets container port %s", s.Name, sp.Name, cp.Name)
			}
			if sp.NodePort != 0 && s.Spec.Type == corev1.ServiceTypeClusterIP {
				t.Errorf("Service %s: node port on a ClusterIP Service", s.Name)
			}
		}
	}
	if string(main.Spec.Type) != r.str("service.type") {
		t.Errorf("Service type %s, want %s", main.Spec.Type, r.str("service.type"))
	}
	if ops.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("-ops Service is %s", ops.Spec.Type)
	}
	names := func(s *corev1.Service) string {
		var n []string
		for _, sp := range s.Spec.Ports {
			n = append(n, sp.Name+"/"+string(sp.Protocol))
		}
		return strings.Join(n, " ")
	}
	wantMain := "http/TCP"
	if r.boolean("tls.enabled") {
		wantMain += " https/TCP"
	}
	if r.boolean("service.http3.enabled") {
		wantMain += " http3/UDP"
	}
	if got := names(main); got != wantMain {
		t.Errorf("traffic Service ports %q, want %q", got, wantMain)
	}
	wantOps := "metrics/TCP"
	if r.boolean("controlPlane.enabled") {
		wantOps += " control-plane/TCP"
	}
	if got := names(ops); got != wantOps {
		t.Errorf("-ops Service ports %q, want %q", got, wantOps)
	}
	for _, sp := range main.Spec.Ports {
		want := map[string]string{"http": "service.httpNodePort", "https": "service.httpsNodePort", "http3": "service.http3.nodePort"}[sp.Name]
		if n := r.str(want); n != "" && main.Spec.Type != corev1.ServiceTypeClusterIP && r.integer(t, want) != int(sp.NodePort) {
			t.Errorf("port %s: nodePort %d, want %s", sp.Name, sp.NodePort, n)
		}
	}
}

// checkOptional: HPA, PDB, Ingress, ServiceMonitor and Secret appear
// exactly when enabled, and point at the right objects.
func checkOptional(t *testing.T, r *rendered) {
	t.Helper()
	p := pod(t, r)
	count := func(n int, enabled bool, what string) bool {
		t.Helper()
		want := 0
		if enabled {
			want = 1
		}
		if n != want {
			t.Errorf("%d %s, want %d", n, what, want)
		}
		return n == 1
	}
	if count(len(all[*autoscalingv2.HorizontalPodAutoscaler](r)), r.boolean("autoscaling.enabled"), "HPA") {
		h := one[*autoscalingv2.HorizontalPodAutoscaler](t, r)
		if h.Spec.ScaleTargetRef.Name != p.deploy.Name || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("HPA targets %+v", h.Spec.ScaleTargetRef)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas || len(h.Spec.Metrics) == 0 {
			t.Errorf("HPA spec %+v", h.Spec)
		}
	}
	if count(len(all[*policyv1.PodDisruptionBudget](r)), r.boolean("podDisruptionBudget.enabled"), "PDB") {
		pdb := one[*policyv1.PodDisruptionBudget](t, r)
		if !selects(t, pdb.Spec.Selector, p.labels) {
			t.Error("PDB selects no pod")
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("PDB needs exactly one of minAvailable and maxUnavailable: %+v", pdb.Spec)
		}
	}
	if count(len(all[*networkingv1.Ingress](r)), r.boolean("ingress.enabled"), "Ingress") {
		ing := one[*networkingv1.Ingress](t, r)
		for _, rule := range ing.Spec.Rules {
			for _, path := range rule.HTTP.Paths {
				b := path.Backend.Service
				if b == nil || b.Name != p.deploy.Name || b.Port.Name != "http" {
					t.Errorf("Ingress backend %+v", path.Backend)
				}
			}
		}
	}
	if count(len(all[*serviceMonitor](r)), r.boolean("serviceMonitor.enabled"), "ServiceMonitor") {
		sm := one[*serviceMonitor](t, r)
		var ops *corev1.Service
		for _, s := range all[*corev1.Service](r) {
			if selects(t, &sm.Spec.Selector, s.Labels) {
				if ops != nil {
					t.Errorf("ServiceMonitor selects Services %s and %s", ops.Name, s.Name)
				}
				ops = s
			}
		}
		if ops == nil || !strings.HasSuffix(ops.Name, "-ops") {
			t.Fatalf("ServiceMonitor does not select the -ops Service")
		}
		if want := r.str("serviceMonitor.namespace"); want != "" && want != namespace {
			if sm.Namespace != want || sm.Spec.NamespaceSelector == nil || strings.Join(sm.Spec.NamespaceSelector.MatchNames, ",") != namespace {
				t.Errorf("ServiceMonitor in %s selecting %+v", sm.Namespace, sm.Spec.NamespaceSelector)
			}
		}
		for _, ep := range sm.Spec.Endpoints {
			if ep.Port != "metrics" || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoint %s%s", ep.Port, ep.Path)
			}
		}
		if kdl := r.configText(t); kdl != "" && !strings.Contains(kdl, `path "/metrics"`) {
			t.Error("ServiceMonitor scrapes /metrics, the config serves metrics elsewhere")
		}
	}
	if count(len(all[*networkingv1.NetworkPolicy](r)), r.boolean("networkPolicy.enabled"), "NetworkPolicy") {
		checkNetworkPolicy(t, r, p)
	}
	ownSecret := (r.boolean("tls.enabled") && r.str("tls.existingSecret") == "") ||
		(r.boolean("controlPlane.enabled") && r.str("controlPlane.existingSecret") == "")
	count(len(all[*corev1.Secret](r)), ownSecret, "Secret")
}

// TestConfigChangeRollsPods: a change of config.raw changes the pod
// template (checksum annotation); a change elsewhere does not.
func TestConfigChangeRollsPods(t *testing.T) {
	ch := loadChart(t)
	podAnn := func(vals map[string]any) map[string]string {
		r := mustRender(t, ch, vals)
		return pod(t, r).deploy.Spec.Template.Annotations
	}
	base := podAnn(map[string]any{})
	raw, _ := ch.Values["config"].(map[string]any)["raw"].(string)
	changed := podAnn(map[string]any{"config": map[string]any{"raw": strings.Replace(raw, `level "info"`, `level "debug"`, 1)}})
	if base["checksum/config"] == "" || base["checksum/config"] == changed["checksum/config"] {
		t.Errorf("checksum/config does not follow config.raw: %q → %q", base["checksum/config"], changed["checksum/config"])
	}
	same := podAnn(map[string]any{"replicaCount": 5})
	if same["checksum/config"] != base["checksum/config"] {
		t.Error("checksum/config changes with replicaCount")
	}
	// Values used by the config template roll the pods too.
	port := podAnn(map[string]any{"shutdown": map[string]any{"gracefulTimeoutSeconds": 40}})
	if port["checksum/config"] == base["checksum/config"] {
		t.Error("checksum/config does not follow shutdown.gracefulTimeoutSeconds")
	}
	// TLS material rolls the pods.
	cert, key := testCert()
	tlsA := podAnn(map[string]any{"tls": map[string]any{"enabled": true, "cert": cert, "key": key}})
	tlsB := podAnn(map[string]any{"tls": map[string]any{"enabled": true, "cert": cert + "\n", "key": key}})
	if tlsA["checksum/secret"] == "" || tlsA["checksum/secret"] == tlsB["checksum/secret"] {
		t.Error("checksum/secret does not follow the certificate")
	}
}

// TestGracePeriodFollowsConfig: the pod's grace period covers the drain
// and the graceful shutdown that the rendered config sets, and an explicit
// terminationGracePeriodSeconds wins.
func TestGracePeriodFollowsConfig(t *testing.T) {
	ch := loadChart(t)
	grace := func(vals map[string]any) (int, string) {
		r := mustRender(t, ch, vals)
		d := pod(t, r).deploy
		return int(*d.Spec.Template.Spec.TerminationGracePeriodSeconds), r.notes
	}
	if g, _ := grace(map[string]any{}); g != 45 {
		t.Errorf("default grace period %d, want 45 (drain 10 + graceful 30 + 5)", g)
	}
	if g, _ := grace(map[string]any{"shutdown": map[string]any{"drainSeconds": 20, "gracefulTimeoutSeconds": 100}}); g != 125 {
		t.Errorf("grace period %d, want 125", g)
	}
	raw, _ := ch.Values["config"].(map[string]any)["raw"].(string)
	literal := regexp.MustCompile(`graceful-shutdown-timeout-secs .*`).ReplaceAllString(raw, "graceful-shutdown-timeout-secs 90")
	if g, _ := grace(map[string]any{"config": map[string]any{"raw": literal}}); g != 105 {
		t.Errorf("grace period %d with graceful-shutdown-timeout-secs 90 in config.raw, want 105", g)
	}
	g, notes := grace(map[string]any{"terminationGracePeriodSeconds": 20})
	if g != 20 || !strings.Contains(notes, "WARNING: terminationGracePeriodSeconds (20)") {
		t.Errorf("explicit grace period %d; NOTES:\n%s", g, notes)
	}
	// Without fsGroup the key must stay readable by the non-root user.
	cert, key := testCert()
	r := mustRender(t, ch, map[string]any{"tls": map[string]any{"enabled": true, "cert": cert, "key": key},
		"podSecurityContext": map[string]any{"fsGroup": nil}})
	checkConfigVolume(t, r, pod(t, r).deploy.Spec.Template.Spec.Volumes[0].Projected, pod(t, r).deploy.Spec.Template.Spec.SecurityContext)
	if _, notes := grace(map[string]any{"tls": map[string]any{"enabled": true, "existingSecret": "x"}, "service": map[string]any{"http3": map[string]any{"enabled": true}}}); !strings.Contains(notes, "WARNING: HTTP/3 is advertised") {
		t.Errorf("no HTTP/3 port warning in NOTES:\n%s", notes)
	}
}

// TestBadValuesRejected: each file of testdata/bad-values fails `helm
// install` (schema or template check) with a message naming the problem
// (first line: `# want: <text>`).
func TestBadValuesRejected(t *testing.T) {
	ch := loadChart(t)
	files, _ := filepath.Glob("testdata/bad-values/*.yaml")
	if len(files) == 0 {
		t.Fatal("no bad values files")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(src), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be `# want: <text>`", f)
			}
			vals, err := chartutil.ReadValues(src)
			if err != nil {
				t.Fatal(err)
			}
			_, err = render(ch, vals)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %q:\n%v", want, err)
			}
			// helm lint reports it too: schema errors fail it; a template
			// `fail` is reported (at info level: lint renders in lint mode).
			kv := kubeVersion
			linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir, vals, namespace, &kv, false)
			reported := false
			for _, m := range linter.Messages {
				reported = reported || strings.Contains(m.Error(), want)
			}
			if !reported {
				t.Errorf("helm lint does not report it: %v", linter.Messages)
			}
		})
	}
}

// TestStrictDecoderRejectsTypos makes sure the strict decoding of the
// manifests would catch a misspelled field, including a case typo.
func TestStrictDecoderRejectsTypos(t *testing.T) {
	ch := loadChart(t)
	r, err := render(ch, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var deployment string
	for name, content := range r.files {
		if strings.HasSuffix(name, "/deployment.yaml") {
			deployment = content
		}
	}
	if _, err := decodeStrict([]byte(deployment)); err != nil {
		t.Fatalf("the rendered Deployment does not decode: %v", err)
	}
	for _, typo := range [][2]string{
		{"readOnlyRootFilesystem", "readOnlyRootFileSystem"},
		{"terminationGracePeriodSeconds", "terminationGracePeriod"},
		{"containerPort", "containerport"},
	} {
		bad := strings.Replace(deployment, typo[0]+":", typo[1]+":", 1)
		if bad == deployment {
			t.Fatalf("%s not in the Deployment", typo[0])
		}
		if _, err := decodeStrict([]byte(bad)); err == nil || !strings.Contains(err.Error(), typo[1]) {
			t.Errorf("%s → %s: %v", typo[0], typo[1], err)
		}
	}
	if _, err := decodeStrict([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}\n")); err == nil {
		t.Error("duplicate key accepted")
	}
}

// TestChartMetadata: one version everywhere (VERSION file, Chart.yaml
// version and appVersion, the Artifact Hub image), Artifact Hub
// annotations parse.
func TestChartMetadata(t *testing.T) {
	ch := loadChart(t)
	v, err := os.ReadFile(filepath.Join(repoRoot(t), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(v))
	md := ch.Metadata
	if md.APIVersion != "v2" || md.Version != version || md.AppVersion != version {
		t.Errorf("Chart.yaml apiVersion %s version %s appVersion %s; VERSION %s", md.APIVersion, md.Version, md.AppVersion, version)
	}
	if err := md.Validate(); err != nil {
		t.Error(err)
	}
	var images []struct {
		Name, Image string
		Platforms   []string
	}
	if err := sigsyaml.UnmarshalStrict([]byte(md.Annotations["artifacthub.io/images"]), &images); err != nil || len(images) != 1 {
		t.Fatalf("artifacthub.io/images: %v %v", images, err)
	}
	repoName, _ := ch.Values["image"].(map[string]any)["repository"].(string)
	if images[0].Image != repoName+":"+version {
		t.Errorf("artifacthub.io/images %s, want %s:%s", images[0].Image, repoName, version)
	}
	var changes []struct{ Kind, Description string }
	if err := sigsyaml.UnmarshalStrict([]byte(md.Annotations["artifacthub.io/changes"]), &changes); err != nil || len(changes) == 0 {
		t.Errorf("artifacthub.io/changes: %v", err)
	}
	var links []struct{ Name, URL string }
	if err := sigsyaml.UnmarshalStrict([]byte(md.Annotations["artifacthub.io/links"]), &links); err != nil || len(links) == 0 {
		t.Errorf("artifacthub.io/links: %v", err)
	}
	// artifacthub-repo.yml: only the keys Artifact Hub knows.
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "artifacthub-repo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		RepositoryID string `json:"repositoryID,omitempty"`
		Owners       []struct {
			Name  string `json:"name"`
			Email string `json:"email"`
		} `json:"owners,omitempty"`
		Ignore []struct {
			Name    string `json:"name"`
			Version string `json:"version,omitempty"`
		} `json:"ignore,omitempty"`
	}
	if err := sigsyaml.UnmarshalStrict(src, &meta); err != nil {
		t.Errorf("artifacthub-repo.yml: %v", err)
	}
}

// TestPackageAndIndex does what `make chart` does with the helm CLI:
// package the chart and build a chart repository index.
func TestPackageAndIndex(t *testing.T) {
	ch := loadChart(t)
	dir := t.TempDir()
	tgz, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(tgz) != "sentinel-"+ch.Metadata.Version+".tgz" {
		t.Errorf("package %s", tgz)
	}
	pkg, err := loader.Load(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Schema == nil || len(pkg.Templates) != len(ch.Templates) {
		t.Errorf("the package lost its schema or templates")
	}
	for _, f := range pkg.Files {
		if f.Name == "icon.svg" {
			t.Error(".helmignore not applied")
		}
	}
	r := mustRender(t, pkg, map[string]any{})
	if len(r.objects) == 0 {
		t.Error("the package renders nothing")
	}
	idx, err := repo.IndexDirectory(dir, "https://sentinel-proxy.github.io/sentinel")
	if err != nil {
		t.Fatal(err)
	}
	idx.SortEntries()
	cv, err := idx.Get("sentinel", ch.Metadata.Version)
	if err != nil {
		t.Fatal(err)
	}
	if cv.AppVersion != ch.Metadata.AppVersion || len(cv.URLs) != 1 || cv.Digest == "" ||
		cv.URLs[0] != "https://sentinel-proxy.github.io/sentinel/"+filepath.Base(tgz) {
		t.Errorf("index entry %+v", cv)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.LoadIndexFile(filepath.Join(dir, "index.yaml")); err != nil {
		t.Fatal(err)
	}
}
