package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/translate"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	"github.com/sentinel-proxy/sentinel/operator/render"
)

// Annotations and labels of the objects made for a Gateway.
const (
	// ConfigHashAnnotation is the SHA-256 of the Gateway's configuration
	// (on the Deployment; also on its pod template with
	// Infrastructure.RolloutOnConfigChange).
	ConfigHashAnnotation = "gateway.sentinel-proxy.io/config-hash"
	// SpecHashAnnotation is the SHA-256 of what the controller wrote into
	// a Deployment's or Service's spec: a differing one is updated.
	SpecHashAnnotation = "gateway.sentinel-proxy.io/spec-hash"
	// GatewayNameLabel is the Gateway API's label of a Gateway's objects.
	GatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
	// ConfigMountDir is where the replicas mount the Gateway's ConfigMap.
	ConfigMountDir = "/etc/sentinel"
)

// Infrastructure makes, for each Gateway, the Deployment and the Service
// "<gateway>-sentinel" (owned by the Gateway, so they go with it) that
// run Sentinel on its ConfigMap: `sentinel run --config
// /etc/sentinel/caddy.json --watch`, the listeners' ports on the
// container and the Service. A SentinelProxy named by the GatewayClass's
// parametersRef or the Gateway's spec.infrastructure.parametersRef gives
// the image, pull policy, replicas, resources and Service type.
type Infrastructure struct {
	// Image of the sentinel container when no SentinelProxy gives one.
	Image string
	// ImagePullPolicy when no SentinelProxy gives one.
	ImagePullPolicy corev1.PullPolicy
	// Replicas when no SentinelProxy gives them (default 2).
	Replicas *int32
	// ServiceType of the Gateway's Service when no SentinelProxy gives
	// one (default LoadBalancer).
	ServiceType corev1.ServiceType
	// RolloutOnConfigChange also puts the configuration's hash on the pod
	// template, so that every change rolls the pods. Off by default: the
	// replicas reload the mounted file gracefully (--watch) when the
	// kubelet updates it, and endpoint changes alone would otherwise roll
	// the pods.
	RolloutOnConfigChange bool
}

// infraName is the Deployment's and Service's name.
func infraName(gw *gwv1.Gateway) string { return gw.Name + "-sentinel" }

// configMapName is the name of the Gateway's ConfigMap.
func configMapName(gw *gwv1.Gateway) string { return gw.Name + "-sentinel-config" }

// owner is the Gateway's owner reference.
func owner(gw *gwv1.Gateway) []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID, Controller: ptr.To(true),
	}}
}

// ownedBy reports whether obj has an owner reference to the Gateway gw.
// The controller updates (and deletes) only the objects it made for the
// Gateway: the names it uses (<gateway>-sentinel, -sentinel-config) are
// predictable, and whoever may create a Gateway must not be able to take
// over a Deployment, Service or ConfigMap of that name it may not write
// itself.
func ownedBy(obj metav1.Object, gw *gwv1.Gateway) bool {
	for _, r := range obj.GetOwnerReferences() {
		if r.Kind == "Gateway" && r.Name == gw.Name && (r.UID == gw.UID || gw.UID == "") {
			return true
		}
	}
	return false
}

// notOwnedError is the error of an object in the way of the Gateway's.
func notOwnedError(kind string, obj client.Object, gw *gwv1.Gateway) error {
	return fmt.Errorf("%s %s/%s exists and is not Gateway %s's (no owner reference to it): it is left alone; delete or rename it",
		kind, obj.GetNamespace(), obj.GetName(), gw.Name)
}

// InvalidParametersError is a parametersRef (the class's or the
// Gateway's) that does not name an existing SentinelProxy.
type InvalidParametersError struct{ Msg string }

func (e *InvalidParametersError) Error() string { return e.Msg }

// sentinelProxyRef reports whether group and kind name a SentinelProxy.
func sentinelProxyRef(group, kind string) bool {
	return group == v1alpha1.GroupVersion.Group && kind == "SentinelProxy"
}

// parameters returns the SentinelProxy giving the Gateway's
// infrastructure: the Gateway's own parametersRef first, then its
// class's; nil when neither names one.
func parameters(ctx context.Context, r client.Reader, gw *gwv1.Gateway) (*v1alpha1.SentinelProxy, error) {
	var key types.NamespacedName
	var where string
	if in := gw.Spec.Infrastructure; in != nil && in.ParametersRef != nil {
		ref := in.ParametersRef
		if !sentinelProxyRef(string(ref.Group), string(ref.Kind)) {
			return nil, &InvalidParametersError{fmt.Sprintf("spec.infrastructure.parametersRef: %s/%s is not a %s/SentinelProxy", ref.Group, ref.Kind, v1alpha1.GroupVersion.Group)}
		}
		key, where = types.NamespacedName{Namespace: gw.Namespace, Name: ref.Name}, "spec.infrastructure.parametersRef"
	} else {
		var gc gwv1.GatewayClass
		if err := r.Get(ctx, types.NamespacedName{Name: string(gw.Spec.GatewayClassName)}, &gc); err != nil {
			return nil, fmt.Errorf("reading GatewayClass %s: %w", gw.Spec.GatewayClassName, err)
		}
		ref := gc.Spec.ParametersRef
		if ref == nil {
			return nil, nil
		}
		if !sentinelProxyRef(string(ref.Group), string(ref.Kind)) || ref.Namespace == nil {
			return nil, &InvalidParametersError{fmt.Sprintf("GatewayClass %s: parametersRef must name a %s/SentinelProxy with its namespace", gc.Name, v1alpha1.GroupVersion.Group)}
		}
		key, where = types.NamespacedName{Namespace: string(*ref.Namespace), Name: ref.Name}, "GatewayClass "+gc.Name+" parametersRef"
	}
	var p v1alpha1.SentinelProxy
	if err := r.Get(ctx, key, &p); err != nil {
		if apierrors.IsNotFound(err) || isNoKind(err) {
			return nil, &InvalidParametersError{fmt.Sprintf("%s: SentinelProxy %s not found", where, key)}
		}
		return nil, fmt.Errorf("%s: reading SentinelProxy %s: %w", where, key, err)
	}
	return &p, nil
}

// ensureInfrastructure creates or updates the Gateway's Deployment and
// Service.
func (p *ConfigMapProgrammer) ensureInfrastructure(ctx context.Context, gw *gwv1.Gateway, cfg []byte, modules []translate.Module) error {
	params, err := parameters(ctx, p.reader(), gw)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cfg)
	d, svc := p.Infra.objects(gw, params, hex.EncodeToString(sum[:]), modules)
	if err := p.apply(ctx, gw, d, &appsv1.Deployment{}, func(cur client.Object) {
		c := cur.(*appsv1.Deployment)
		c.Spec.Replicas, c.Spec.Template, c.Spec.Strategy = d.Spec.Replicas, d.Spec.Template, d.Spec.Strategy
	}); err != nil {
		return err
	}
	return p.apply(ctx, gw, svc, &corev1.Service{}, func(cur client.Object) {
		c := cur.(*corev1.Service)
		c.Spec.Type, c.Spec.Ports, c.Spec.Selector = svc.Spec.Type, svc.Spec.Ports, svc.Spec.Selector
	})
}

// apply creates want, or updates the existing object (cur, read fresh)
// with set when its annotations differ from want's (the spec hash, the
// config hash) or its labels do. An existing object that is not gw's is
// an error, never updated.
func (p *ConfigMapProgrammer) apply(ctx context.Context, gw *gwv1.Gateway, want, cur client.Object, set func(client.Object)) error {
	kind := fmt.Sprintf("%T", want)[1:]
	err := p.reader().Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := p.C.Create(ctx, want); err != nil {
			return fmt.Errorf("creating %s %s: %w", kind, client.ObjectKeyFromObject(want), err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading %s %s: %w", kind, client.ObjectKeyFromObject(want), err)
	case !ownedBy(cur, gw):
		return notOwnedError(kind, want, gw)
	}
	same := true
	for k, v := range want.GetAnnotations() {
		same = same && cur.GetAnnotations()[k] == v
	}
	for k, v := range want.GetLabels() {
		same = same && cur.GetLabels()[k] == v
	}
	if same {
		return nil
	}
	a := cur.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	maps.Copy(a, want.GetAnnotations())
	cur.SetAnnotations(a)
	l := cur.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, want.GetLabels())
	cur.SetLabels(l)
	cur.SetOwnerReferences(want.GetOwnerReferences())
	set(cur)
	if err := p.C.Update(ctx, cur); err != nil {
		return fmt.Errorf("updating %s %s: %w", kind, client.ObjectKeyFromObject(want), err)
	}
	return nil
}

// ports are the distinct ports of the Gateway's listeners Sentinel
// serves, in order.
func ports(gw *gwv1.Gateway) []int32 {
	var out []int32
	for _, l := range gw.Spec.Listeners {
		switch l.Protocol {
		case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType, gwv1.TLSProtocolType, gwv1.TCPProtocolType:
			if !slices.Contains(out, int32(l.Port)) {
				out = append(out, int32(l.Port))
			}
		}
	}
	slices.Sort(out)
	return out
}

// objects renders the Gateway's Deployment and Service. With modules
// (SentinelPlugins from ConfigMaps), the config volume is a projected
// volume of the config and the modules' copies (one atomic update by the
// kubelet), and the modules' digests are on the pod template: a changed
// module rolls the replicas.
func (in *Infrastructure) objects(gw *gwv1.Gateway, params *v1alpha1.SentinelProxy, configHash string, modules []translate.Module) (*appsv1.Deployment, *corev1.Service) {
	image, pull, replicas, svcType := in.Image, in.ImagePullPolicy, in.Replicas, in.ServiceType
	var resources corev1.ResourceRequirements
	if params != nil {
		image, pull, svcType, resources = params.Spec.Image, params.Spec.ImagePullPolicy, params.Spec.ServiceType, params.Spec.Resources
		if params.Spec.Replicas != nil {
			replicas = params.Spec.Replicas
		} else if a := params.Spec.Autoscaling; a != nil {
			replicas = ptr.To(max(a.MinReplicas, 1))
		}
	}
	if replicas == nil {
		replicas = ptr.To[int32](2)
	}
	if svcType == "" {
		svcType = corev1.ServiceTypeLoadBalancer
	}
	selector := map[string]string{GatewayNameLabel: gw.Name, "app.kubernetes.io/name": "sentinel-gateway"}
	labels := map[string]string{}
	annotations := map[string]string{}
	if i := gw.Spec.Infrastructure; i != nil {
		for k, v := range i.Labels {
			labels[string(k)] = string(v)
		}
		for k, v := range i.Annotations {
			annotations[string(k)] = string(v)
		}
	}
	maps.Copy(labels, selector)
	labels["app.kubernetes.io/managed-by"] = "sentinel-operator"
	labels["app.kubernetes.io/component"] = "gateway"

	var cports []corev1.ContainerPort
	var sports []corev1.ServicePort
	privileged := false
	for _, port := range ports(gw) {
		name := "p-" + strconv.Itoa(int(port))
		cports = append(cports, corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP})
		sports = append(sports, corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromString(name), Protocol: corev1.ProtocolTCP})
		privileged = privileged || port < 1024
	}
	pod := render.PodSecurityContext()
	if privileged {
		// Ports below 1024 as a non-root user without capabilities
		// (a safe, namespaced sysctl).
		pod.Sysctls = []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}
	}
	var probe *corev1.Probe
	if len(cports) > 0 {
		probe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(cports[0].Name)}}, PeriodSeconds: 5}
	}
	podAnn := maps.Clone(annotations)
	if in.RolloutOnConfigChange {
		podAnn[ConfigHashAnnotation] = configHash
	}
	configVolume := corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(gw)}}}
	if len(modules) > 0 {
		podAnn[ModuleSHA256Annotation] = modulesHash(modules)
		sources := append([]corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(gw)}}}},
			moduleVolumeSources(gw, modules)...)
		configVolume = corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}
	}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: gw.Namespace, Name: infraName(gw), Labels: maps.Clone(labels), Annotations: maps.Clone(annotations), OwnerReferences: owner(gw)}
	}
	d := &appsv1.Deployment{ObjectMeta: meta(), Spec: appsv1.DeploymentSpec{
		Replicas: replicas,
		Selector: &metav1.LabelSelector{MatchLabels: selector},
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1)),
		}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels), Annotations: podAnn},
			Spec: corev1.PodSpec{
				AutomountServiceAccountToken: ptr.To(false),
				EnableServiceLinks:           ptr.To(false),
				SecurityContext:              pod,
				Containers: []corev1.Container{{
					Name:            "sentinel",
					Image:           image,
					ImagePullPolicy: pull,
					Command:         []string{"/usr/bin/sentinel"},
					Args:            []string{"run", "--config", ConfigMountDir + "/" + ConfigKey, "--watch"},
					Ports:           cports,
					Env:             render.DataEnv(),
					Resources:       resources,
					VolumeMounts: []corev1.VolumeMount{
						{Name: "config", MountPath: ConfigMountDir, ReadOnly: true},
						{Name: "data", MountPath: "/data"}, {Name: "tmp", MountPath: "/tmp"},
					},
					ReadinessProbe:  probe,
					SecurityContext: render.ContainerSecurityContext(),
				}},
				Volumes: []corev1.Volume{
					{Name: "config", VolumeSource: configVolume},
					{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				},
			},
		},
	}}
	svc := &corev1.Service{ObjectMeta: meta(), Spec: corev1.ServiceSpec{Type: svcType, Selector: selector, Ports: sports}}
	d.Annotations[SpecHashAnnotation] = hashJSON(d.Spec)
	d.Annotations[ConfigHashAnnotation] = configHash
	svc.Annotations[SpecHashAnnotation] = hashJSON(svc.Spec)
	return d, svc
}

// hashJSON is the SHA-256 of v's JSON.
func hashJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // API types always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
