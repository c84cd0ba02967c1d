package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	oprender "github.com/sentinel-proxy/sentinel/operator/render"
)

// operatorValues are values with operator.enabled and most proxy
// settings the SentinelProxy carries.
func operatorValues(extra map[string]any) map[string]any {
	v := map[string]any{
		"operator":            map[string]any{"enabled": true, "adminTLSSecretName": "edge-admin-tls", "proxyConfig": `upstreams { upstream "app" { target "app.edge.svc:80"; } }`},
		"tls":                 map[string]any{"enabled": true, "existingSecret": "edge-tls"},
		"resources":           map[string]any{"requests": map[string]any{"cpu": "200m", "memory": "128Mi"}},
		"autoscaling":         map[string]any{"enabled": true, "minReplicas": 3, "maxReplicas": 9},
		"podDisruptionBudget": map[string]any{"enabled": true, "minAvailable": 2},
		"serviceMonitor":      map[string]any{"enabled": true, "interval": "15s"},
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// TestOperatorMode: with operator.enabled the chart installs the CRDs
// (the generated ones), the operator with a Role holding exactly the
// generated ClusterRole's rules in the release namespace, and a
// SentinelProxy carrying the values; it renders none of the proxy's own
// objects (the operator does: one implementation), and the
// SentinelProxy's sentinel.kdl, rendered by the operator's code, is
// valid.
func TestOperatorMode(t *testing.T) {
	ch := loadChart(t)
	r := mustRender(t, ch, operatorValues(nil))

	// The CRDs are the generated ones.
	crds := all[*apiextensionsv1.CustomResourceDefinition](r)
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "operator", "crds", "*.yaml"))
	if len(crds) != len(files) || len(files) != 5 {
		t.Fatalf("%d CRDs rendered, %d generated", len(crds), len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var want apiextensionsv1.CustomResourceDefinition
		if err := sigsyaml.UnmarshalStrict(b, &want); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range crds {
			if c.Name == want.Name {
				found = reflect.DeepEqual(c.Spec, want.Spec)
			}
		}
		if !found {
			t.Errorf("CRD %s: not rendered, or not the generated one", want.Name)
		}
	}

	// Least privilege: a Role (not a ClusterRole) with the generated rules.
	b, _ := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "operator", "rbac", "role.yaml"))
	var cr rbacv1.ClusterRole
	if err := sigsyaml.UnmarshalStrict(b, &cr); err != nil {
		t.Fatal(err)
	}
	role := one[*rbacv1.Role](t, r)
	if role.Namespace != namespace || !reflect.DeepEqual(role.Rules, cr.Rules) {
		t.Errorf("operator Role %s/%s rules differ from deploy/operator/rbac/role.yaml", role.Namespace, role.Name)
	}
	rb := one[*rbacv1.RoleBinding](t, r)
	if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "prod-sentinel-operator" {
		t.Errorf("RoleBinding %+v", rb)
	}

	// The operator is the only Deployment, watching the release namespace.
	dep := one[*appsv1.Deployment](t, r)
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	if dep.Name != "prod-sentinel-operator" || !strings.Contains(args, "--namespaces="+namespace) || !strings.Contains(args, "--leader-election-namespace="+namespace) ||
		dep.Spec.Template.Spec.ServiceAccountName != "prod-sentinel-operator" || !strings.HasPrefix(dep.Spec.Template.Spec.Containers[0].Image, "ghcr.io/sentinel-proxy/sentinel-operator:") {
		t.Errorf("operator Deployment %s: %s", dep.Name, args)
	}
	for _, o := range r.objects {
		switch o.meta.Kind {
		case "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "Ingress":
			t.Errorf("%s %s rendered by the chart: the operator renders it", o.meta.Kind, o.name)
		}
	}

	// The SentinelProxy carries the values.
	p := one[*v1alpha1.SentinelProxy](t, r)
	s := p.Spec
	if p.Name != "prod-sentinel" || s.Replicas != nil || s.Autoscaling == nil || s.Autoscaling.MinReplicas != 3 || s.Autoscaling.MaxReplicas != 9 ||
		s.Disruption == nil || s.Disruption.MinAvailable == nil || s.Disruption.MinAvailable.IntValue() != 2 || s.ServiceMonitor == nil || s.ServiceMonitor.Interval != "15s" ||
		len(s.Listeners) != 2 || s.Listeners[1].TLSSecretName != "edge-tls" || s.AdminAPI.TLSSecretName != "edge-admin-tls" ||
		!s.Resources.Requests.Cpu().Equal(resource.MustParse("200m")) || !strings.Contains(s.Config, `upstream "app"`) {
		t.Errorf("SentinelProxy spec %+v", s)
	}
	p.Namespace = namespace
	if _, err := oprender.KDL(p, nil, nil, nil); err != nil {
		t.Errorf("the SentinelProxy's configuration: %v", err)
	}
	if d := oprender.Deployment(p); d.Spec.Template.Spec.Containers[0].Image != s.Image || d.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().Cmp(resource.MustParse("200m")) != 0 {
		t.Error("the operator's Deployment does not carry the image and resources")
	}
	// helm lint --strict is clean in this mode too.
	kv := kubeVersion
	for _, m := range lint.AllWithKubeVersionAndSchemaValidation(chartDir, operatorValues(nil), namespace, &kv, false).Messages {
		t.Errorf("helm lint: %s", m.Error())
	}

	// Without the admin TLS Secret: a clear error.
	vals := operatorValues(nil)
	vals["operator"].(map[string]any)["adminTLSSecretName"] = ""
	if _, err := render(ch, vals); err == nil || !strings.Contains(err.Error(), "operator.adminTLSSecretName is required with operator.enabled") ||
		!strings.Contains(err.Error(), "prod-sentinel-ops.edge.svc") {
		t.Errorf("missing adminTLSSecretName: %v", err)
	}
	// CRDs managed elsewhere; replicas without autoscaling.
	vals = operatorValues(map[string]any{"autoscaling": map[string]any{"enabled": false}, "replicaCount": 4})
	vals["operator"].(map[string]any)["installCRDs"] = false
	r = mustRender(t, ch, vals)
	if n := len(all[*apiextensionsv1.CustomResourceDefinition](r)); n != 0 {
		t.Errorf("%d CRDs with installCRDs false", n)
	}
	if p := one[*v1alpha1.SentinelProxy](t, r); p.Spec.Replicas == nil || *p.Spec.Replicas != 4 || p.Spec.Autoscaling != nil {
		t.Errorf("replicas %v autoscaling %v", p.Spec.Replicas, p.Spec.Autoscaling)
	}
}
