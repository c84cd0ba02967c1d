package controller

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestInfrastructureObjects: RolloutOnConfigChange puts the config's
// hash on the pod template (a new config rolls the pods), off it is on
// the Deployment only; listeners of protocols Sentinel does not serve
// (UDP) get no port; ports are listed once, sorted.
func TestInfrastructureObjects(t *testing.T) {
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gw", UID: "u1"}, Spec: gwv1.GatewaySpec{Listeners: []gwv1.Listener{
		{Name: "b", Port: 8443, Protocol: gwv1.TLSProtocolType},
		{Name: "a", Port: 80, Protocol: gwv1.HTTPProtocolType},
		{Name: "c", Port: 53, Protocol: gwv1.UDPProtocolType},
		{Name: "d", Port: 80, Protocol: gwv1.HTTPProtocolType},
	}}}
	if got := ports(gw); !slices.Equal(got, []int32{80, 8443}) {
		t.Errorf("ports %v, want [80 8443]", got)
	}
	in := &Infrastructure{Image: "img"}
	d, svc := in.objects(gw, nil, "h1", nil)
	if _, ok := d.Spec.Template.Annotations[ConfigHashAnnotation]; ok || d.Annotations[ConfigHashAnnotation] != "h1" {
		t.Errorf("without rollout: template %v, deployment %v", d.Spec.Template.Annotations, d.Annotations)
	}
	if svc.Spec.Type != "LoadBalancer" || len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Name != "p-80" {
		t.Errorf("service %+v", svc.Spec)
	}
	in.RolloutOnConfigChange = true
	d2, _ := in.objects(gw, nil, "h2", nil)
	if d2.Spec.Template.Annotations[ConfigHashAnnotation] != "h2" {
		t.Errorf("with rollout: template %v", d2.Spec.Template.Annotations)
	}
	if d.Annotations[SpecHashAnnotation] == d2.Annotations[SpecHashAnnotation] {
		t.Error("the spec hash does not follow the pod template")
	}
	d3, _ := in.objects(gw, nil, "h2", nil)
	if d3.Annotations[SpecHashAnnotation] != d2.Annotations[SpecHashAnnotation] {
		t.Error("the spec hash is not stable")
	}
}
