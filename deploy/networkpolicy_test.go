package deploy

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// peersOf decodes the NetworkPolicyPeer list of a value path.
func peersOf[T any](t *testing.T, r *rendered, path string) []T {
	t.Helper()
	v := r.value(path)
	if v == nil {
		return nil
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) || (isEmptyJSON(ja) && isEmptyJSON(jb))
}

func isEmptyJSON(b []byte) bool { s := string(b); return s == "null" || s == "[]" }

// checkNetworkPolicy (networkPolicy.enabled): the policy selects the
// proxy pods; each container port is opened by exactly the rule of its
// value (traffic ports: proxyFrom, anywhere when empty; the ops port:
// metricsFrom; the control-plane port: controlPlaneFrom), a port whose
// peers are empty (ops, control plane) by none; every rule names its
// ports (a rule without ports opens them all); egress is restricted only
// when networkPolicy.egress is set.
func checkNetworkPolicy(t *testing.T, r *rendered, p podInfo) {
	t.Helper()
	np := one[*networkingv1.NetworkPolicy](t, r)
	if !selects(t, &np.Spec.PodSelector, p.labels) {
		t.Error("NetworkPolicy selects no proxy pod")
	}
	egress := peersOf[networkingv1.NetworkPolicyEgressRule](t, r, "networkPolicy.egress")
	types := map[networkingv1.PolicyType]bool{}
	for _, ty := range np.Spec.PolicyTypes {
		types[ty] = true
	}
	if !types[networkingv1.PolicyTypeIngress] || types[networkingv1.PolicyTypeEgress] != (len(egress) > 0) || !sameJSON(np.Spec.Egress, egress) {
		t.Errorf("policy types %v, egress %+v; networkPolicy.egress %+v", np.Spec.PolicyTypes, np.Spec.Egress, egress)
	}
	extra := len(peersOf[networkingv1.NetworkPolicyIngressRule](t, r, "networkPolicy.extraIngress"))
	own := np.Spec.Ingress[:len(np.Spec.Ingress)-extra]
	for i, rule := range own {
		if len(rule.Ports) == 0 {
			t.Errorf("ingress rule %d names no port: it opens them all", i)
		}
	}
	for _, cp := range p.container.Ports {
		var want []networkingv1.NetworkPolicyPeer
		open := true
		switch cp.Name {
		case "http", "https", "http3":
			want = peersOf[networkingv1.NetworkPolicyPeer](t, r, "networkPolicy.proxyFrom")
		case "metrics":
			want = peersOf[networkingv1.NetworkPolicyPeer](t, r, "networkPolicy.metricsFrom")
			open = len(want) > 0
		case "control-plane":
			want = peersOf[networkingv1.NetworkPolicyPeer](t, r, "networkPolicy.controlPlaneFrom")
			open = len(want) > 0
		default:
			t.Errorf("container port %s: not known to the check", cp.Name)
			continue
		}
		var rules []networkingv1.NetworkPolicyIngressRule
		for _, rule := range own {
			for _, pp := range rule.Ports {
				if pp.Port != nil && pp.Port.IntVal == cp.ContainerPort && pp.Protocol != nil && *pp.Protocol == cp.Protocol {
					rules = append(rules, rule)
				}
			}
		}
		switch {
		case !open && len(rules) != 0:
			t.Errorf("port %s (%d/%s) opened with no peers configured: %+v", cp.Name, cp.ContainerPort, cp.Protocol, rules)
		case open && len(rules) != 1:
			t.Errorf("port %s (%d/%s): %d rules, want 1", cp.Name, cp.ContainerPort, cp.Protocol, len(rules))
		case open && !sameJSON(rules[0].From, want):
			t.Errorf("port %s from %+v, want %+v", cp.Name, rules[0].From, want)
		}
	}
}

// peer is a pod that connects to the proxy: its namespace's labels and
// its own.
type peer struct {
	what     string
	nsLabels map[string]string
	labels   map[string]string
	ip       string
}

// admits evaluates the policy's ingress rules as a CNI does, for a peer
// in another namespace than the policy's (a podSelector alone selects
// the policy's namespace, so it never matches such a peer).
func admits(t *testing.T, np *networkingv1.NetworkPolicy, pr peer, port int32, proto corev1.Protocol) bool {
	t.Helper()
	match := func(sel *metav1.LabelSelector, set map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		return s.Matches(labels.Set(set))
	}
	for _, rule := range np.Spec.Ingress {
		portOK := len(rule.Ports) == 0
		for _, pp := range rule.Ports {
			portOK = portOK || (pp.Port == nil || pp.Port.IntVal == port) && (pp.Protocol == nil || *pp.Protocol == proto)
		}
		if !portOK {
			continue
		}
		if len(rule.From) == 0 {
			return true
		}
		for _, f := range rule.From {
			switch {
			case f.IPBlock != nil:
				if pr.ip != "" && strings.HasPrefix(f.IPBlock.CIDR, "0.0.0.0/") {
					return true
				}
			case f.NamespaceSelector != nil:
				if match(f.NamespaceSelector, pr.nsLabels) && (f.PodSelector == nil || match(f.PodSelector, pr.labels)) {
					return true
				}
			}
		}
	}
	return false
}

// TestNetworkPolicy: with networkPolicy.enabled and the values of
// testdata/values/network-policy.yaml, a pod of any namespace reaches the
// HTTP and HTTPS ports but not the ops port nor the control-plane API;
// Prometheus' namespace reaches the ops port only; the named deployer
// pods reach the control-plane API, other pods of their namespace do
// not. Without controlPlaneFrom, the API port is open to no peer.
func TestNetworkPolicy(t *testing.T) {
	ch := loadChart(t)
	var vals map[string]any
	for _, vs := range valueSets(t) {
		if vs.name == "network-policy" {
			vals = vs.vals
		}
	}
	if vals == nil {
		t.Fatal("no testdata/values/network-policy.yaml")
	}
	r := mustRender(t, ch, vals)
	np := one[*networkingv1.NetworkPolicy](t, r)
	if np.Name != releaseName+"-sentinel" || np.Namespace != namespace {
		t.Errorf("NetworkPolicy %s/%s", np.Namespace, np.Name)
	}
	ns := func(name string) map[string]string { return map[string]string{"kubernetes.io/metadata.name": name} }
	anyPod := peer{what: "a pod of namespace shop", nsLabels: ns("shop"), labels: map[string]string{"app": "web"}}
	prom := peer{what: "Prometheus", nsLabels: ns("monitoring"), labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	deployer := peer{what: "the deployer", nsLabels: ns("platform"), labels: map[string]string{"app": "deployer"}}
	other := peer{what: "another pod of platform", nsLabels: ns("platform"), labels: map[string]string{"app": "other"}}
	const httpPort, httpsPort, opsPort, apiPort = 8080, 8443, 9090, 9901
	for _, tc := range []struct {
		pr    peer
		port  int32
		proto corev1.Protocol
		want  bool
	}{
		{anyPod, httpPort, corev1.ProtocolTCP, true},
		{anyPod, httpsPort, corev1.ProtocolTCP, true},
		{anyPod, httpsPort, corev1.ProtocolUDP, false}, // no HTTP/3 in this value set
		{anyPod, opsPort, corev1.ProtocolTCP, false},
		{anyPod, apiPort, corev1.ProtocolTCP, false},
		{anyPod, 2019, corev1.ProtocolTCP, false}, // any other port
		{prom, opsPort, corev1.ProtocolTCP, true},
		{prom, apiPort, corev1.ProtocolTCP, false},
		{deployer, apiPort, corev1.ProtocolTCP, true},
		{other, apiPort, corev1.ProtocolTCP, false},
		{other, opsPort, corev1.ProtocolTCP, false},
	} {
		if got := admits(t, np, tc.pr, tc.port, tc.proto); got != tc.want {
			t.Errorf("%s to %d/%s: admitted %v, want %v", tc.pr.what, tc.port, tc.proto, got, tc.want)
		}
	}
	// Egress: restricted to the configured rules (DNS, one CIDR).
	if len(np.Spec.Egress) != 2 || len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("egress %+v, types %v", np.Spec.Egress, np.Spec.PolicyTypes)
	}

	// Without controlPlaneFrom nor metricsFrom: only the traffic ports
	// open, egress free.
	delete(vals["networkPolicy"].(map[string]any), "controlPlaneFrom")
	delete(vals["networkPolicy"].(map[string]any), "egress")
	vals["networkPolicy"].(map[string]any)["metricsFrom"] = []any{}
	r = mustRender(t, ch, vals)
	np = one[*networkingv1.NetworkPolicy](t, r)
	checkNetworkPolicy(t, r, pod(t, r))
	for _, pr := range []peer{deployer, prom} {
		for _, port := range []int32{opsPort, apiPort} {
			if admits(t, np, pr, port, corev1.ProtocolTCP) {
				t.Errorf("%s reaches %d with no peers configured", pr.what, port)
			}
		}
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.PolicyTypes) != 1 || np.Spec.Egress != nil {
		t.Errorf("ingress %+v, types %v, egress %+v", np.Spec.Ingress, np.Spec.PolicyTypes, np.Spec.Egress)
	}
}
