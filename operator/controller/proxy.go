package controller

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	"github.com/sentinel-proxy/sentinel/operator/render"
)

// FieldOwner is the operator's server-side apply field manager.
const FieldOwner = "sentinel-operator"

// Requeue delays of the proxy reconciler.
const (
	// pendingRetry: a replica has not applied the revision yet (the
	// kubelet updates a mounted ConfigMap within about a minute).
	pendingRetry = 2 * time.Second
	// resync: everything applied; look again (drift, replicas).
	resync = 5 * time.Minute
)

// ProxyReconciler renders SentinelProxies with the SentinelUpstreams,
// SentinelAgents and SentinelRoutes selecting them, applies their
// objects (owned by the SentinelProxy) and reloads their replicas.
type ProxyReconciler struct {
	client.Client
	// Reader reads past the cache (Secrets, the proxy's objects: the
	// operator watches none of them).
	Reader client.Reader
	// Recorder emits Events.
	Recorder events.EventRecorder
	// Replicas reaches the replicas' control API.
	Replicas *ReplicaClient

	several bool
}

// +kubebuilder:rbac:groups=sentinel.sentinel-proxy.io,resources=sentinelproxies;sentinelroutes;sentinelagents,verbs=get;list;watch
// +kubebuilder:rbac:groups=sentinel.sentinel-proxy.io,resources=sentinelproxies/status;sentinelroutes/status;sentinelagents/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;create;patch

// SetupWithManager registers the reconciler: SentinelProxies, and the
// SentinelRoutes, SentinelAgents, SentinelUpstreams and ops-Service
// EndpointSlices that concern them.
func (r *ProxyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	changed := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SentinelProxy{}, changed).
		Watches(&v1alpha1.SentinelRoute{}, handler.EnqueueRequestsFromMapFunc(r.selecting(func(o client.Object) v1alpha1.ProxySelection {
			return o.(*v1alpha1.SentinelRoute).Spec.ProxySelection
		})), changed).
		Watches(&v1alpha1.SentinelAgent{}, handler.EnqueueRequestsFromMapFunc(r.selecting(func(o client.Object) v1alpha1.ProxySelection {
			return o.(*v1alpha1.SentinelAgent).Spec.ProxySelection
		})), changed).
		Watches(&v1alpha1.SentinelUpstream{}, handler.EnqueueRequestsFromMapFunc(r.selecting(func(o client.Object) v1alpha1.ProxySelection {
			return v1alpha1.ProxySelection{ProxyRef: &o.(*v1alpha1.SentinelUpstream).Spec.ProxyRef}
		})), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			svc := o.GetLabels()[discoveryv1.LabelServiceName]
			name, ok := strings.CutSuffix(svc, v1alpha1.OpsSuffix)
			if !ok || name == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
		})).
		Named("sentinelproxy").
		WithOptions(controller.Options{SkipNameValidation: &r.several}).
		Complete(r)
}

// selecting maps a route, agent or upstream to the proxies it selects.
func (r *ProxyReconciler) selecting(sel func(client.Object) v1alpha1.ProxySelection) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		s := sel(o)
		if s.ProxyRef != nil {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: s.ProxyRef.Name}}}
		}
		var list v1alpha1.SentinelProxyList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			logf.FromContext(ctx).Error(err, "listing SentinelProxies")
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			if selects(s, &list.Items[i]) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return out
	}
}

// selects reports whether s selects proxy p (of the same namespace).
func selects(s v1alpha1.ProxySelection, p *v1alpha1.SentinelProxy) bool {
	if s.ProxyRef != nil {
		return s.ProxyRef.Name == p.Name
	}
	if s.ProxySelector == nil {
		return false
	}
	ls, err := metav1.LabelSelectorAsSelector(s.ProxySelector)
	return err == nil && !ls.Empty() && ls.Matches(labels.Set(p.Labels))
}

// Reconcile renders proxy req, applies its objects and reloads its
// replicas.
func (r *ProxyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p v1alpha1.SentinelProxy
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.Replicas.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its objects go with it (owner references)
	}
	ups, agents, routes, err := r.selected(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	cfg, err := render.KDL(&p, ups, agents, routes)
	if err != nil {
		r.Recorder.Eventf(&p, nil, corev1.EventTypeWarning, "InvalidConfig", "Render", "%v", err)
		return ctrl.Result{}, r.setProxyStatus(ctx, &p, nil, nil, "InvalidConfig", err.Error())
	}
	for _, rej := range cfg.Rejected {
		var obj client.Object
		switch rej.Kind {
		case "SentinelRoute":
			obj = find(routes, rej.Name)
		case "SentinelAgent":
			obj = find(agents, rej.Name)
		default:
			obj = find(ups, rej.Name)
		}
		r.Recorder.Eventf(obj, &p, corev1.EventTypeWarning, "Rejected", "Render", "left out of SentinelProxy %s: %v", p.Name, rej.Err)
	}
	token, err := r.token(ctx, &p)
	if err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, cfg, "TokenUnavailable", err)
	}
	tlsc, err := r.adminTLS(ctx, &p)
	if err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, cfg, "AdminTLSUnavailable", err)
	}
	if err := r.applyObjects(ctx, &p, cfg); err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, cfg, "ApplyFailed", err)
	}
	reps, err := r.replicas(ctx, &p)
	if err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, cfg, "ReplicasUnknown", err)
	}
	results := r.Replicas.Reload(ctx, req.NamespacedName, reps, Auth{Token: token, TLS: tlsc}, cfg.Revision)
	if err := r.setRenderStatuses(ctx, &p, cfg, routes, agents, results); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.setProxyStatus(ctx, &p, cfg, results, "", ""); err != nil {
		return ctrl.Result{}, err
	}
	if len(notUpdated(results)) > 0 {
		return ctrl.Result{RequeueAfter: pendingRetry}, nil
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// find returns the item named name as a client.Object.
func find[T any, PT interface {
	*T
	client.Object
}](items []T, name string) client.Object {
	for i := range items {
		if PT(&items[i]).GetName() == name {
			return PT(&items[i])
		}
	}
	return nil
}

// selected lists the upstreams, agents and routes of p.
func (r *ProxyReconciler) selected(ctx context.Context, p *v1alpha1.SentinelProxy) ([]v1alpha1.SentinelUpstream, []v1alpha1.SentinelAgent, []v1alpha1.SentinelRoute, error) {
	var ul v1alpha1.SentinelUpstreamList
	var al v1alpha1.SentinelAgentList
	var rl v1alpha1.SentinelRouteList
	for _, l := range []client.ObjectList{&ul, &al, &rl} {
		if err := r.List(ctx, l, client.InNamespace(p.Namespace)); err != nil {
			return nil, nil, nil, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	ups := slices.DeleteFunc(ul.Items, func(u v1alpha1.SentinelUpstream) bool {
		return u.Spec.ProxyRef.Name != p.Name || !u.DeletionTimestamp.IsZero()
	})
	agents := slices.DeleteFunc(al.Items, func(a v1alpha1.SentinelAgent) bool {
		return !selects(a.Spec.ProxySelection, p) || !a.DeletionTimestamp.IsZero()
	})
	routes := slices.DeleteFunc(rl.Items, func(x v1alpha1.SentinelRoute) bool {
		return !selects(x.Spec.ProxySelection, p) || !x.DeletionTimestamp.IsZero()
	})
	return ups, agents, routes, nil
}

// token returns the admin-api token: from the Secret the spec names, or
// from the Secret "<proxy>-admin" the operator creates with a random one.
func (r *ProxyReconciler) token(ctx context.Context, p *v1alpha1.SentinelProxy) (string, error) {
	name, key := render.TokenSecret(p)
	var s corev1.Secret
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &s)
	switch {
	case err == nil:
		if t := strings.TrimSpace(string(s.Data[key])); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("the Secret %s has no key %q (the admin-api token)", name, key)
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("reading the Secret %s: %w", name, err)
	case p.Spec.AdminAPI.TokenSecretRef != nil:
		return "", fmt.Errorf("the Secret %s (spec.adminAPI.tokenSecretRef) does not exist", name)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	sec := render.Secret(p, token)
	if err := controllerutil.SetControllerReference(p, sec, r.Scheme()); err != nil {
		return "", err
	}
	if err := r.Create(ctx, sec); err != nil {
		return "", fmt.Errorf("creating the Secret %s: %w", name, err)
	}
	return token, nil
}

// adminTLS returns the TLS that checks the replicas' control API: the
// CA of spec.adminAPI.tlsSecretName (ca.crt, else tls.crt itself), for
// the ops Service's name.
func (r *ProxyReconciler) adminTLS(ctx context.Context, p *v1alpha1.SentinelProxy) (*tls.Config, error) {
	name := p.Spec.AdminAPI.TLSSecretName
	var s corev1.Secret
	if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("reading the admin-api TLS Secret %s (spec.adminAPI.tlsSecretName): %w", name, err)
	}
	ca := s.Data["ca.crt"]
	if len(ca) == 0 {
		ca = s.Data[corev1.TLSCertKey]
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("the admin-api TLS Secret %s has no PEM certificate in ca.crt or tls.crt", name)
	}
	return &tls.Config{RootCAs: pool, ServerName: p.Name + v1alpha1.OpsSuffix + "." + p.Namespace + ".svc", MinVersion: tls.VersionTLS12}, nil
}

// applyObjects applies the proxy's objects (server-side apply, owned by
// the SentinelProxy) and deletes the optional ones the spec dropped.
func (r *ProxyReconciler) applyObjects(ctx context.Context, p *v1alpha1.SentinelProxy, cfg *render.Config) error {
	main, ops := render.Services(p)
	state := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: p.Name + v1alpha1.StateSuffix, Namespace: p.Namespace,
		Labels: map[string]string{StateLabel: "true", "app.kubernetes.io/managed-by": "sentinel-operator"}}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: render.ServiceAccountName(p), Namespace: p.Namespace, Labels: render.Labels(p)}}
	role := &rbacv1.Role{ObjectMeta: sa.ObjectMeta, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{state.Name}, Verbs: []string{"get", "watch", "update"}},
		// The fleet's replica reports (fleet-wide drains), a Lease each.
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: sa.ObjectMeta,
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: p.Namespace}},
	}
	objs := []client.Object{render.ConfigMap(p, cfg), state, sa, role, binding, main, ops, render.Deployment(p)}
	if pdb := render.PodDisruptionBudget(p); pdb != nil {
		objs = append(objs, pdb)
	} else if err := r.deleteOwned(ctx, p, "PodDisruptionBudget", schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}); err != nil {
		return err
	}
	if hpa := render.HorizontalPodAutoscaler(p); hpa != nil {
		objs = append(objs, hpa)
	} else if err := r.deleteOwned(ctx, p, "HorizontalPodAutoscaler", schema.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}); err != nil {
		return err
	}
	smGVK := schema.GroupVersionKind{Group: render.ServiceMonitorGVK.Group, Version: render.ServiceMonitorGVK.Version, Kind: render.ServiceMonitorGVK.Kind}
	_, noSM := r.RESTMapper().RESTMapping(smGVK.GroupKind(), smGVK.Version)
	switch sm := render.ServiceMonitor(p); {
	case noSM != nil && !meta.IsNoMatchError(noSM):
		return fmt.Errorf("looking up ServiceMonitor: %w", noSM)
	case noSM != nil && sm != nil:
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, "NoServiceMonitorCRD", "Apply", "spec.serviceMonitor is set but the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed: none made")
	case sm != nil:
		objs = append(objs, sm)
	case noSM == nil:
		if err := r.deleteOwned(ctx, p, "ServiceMonitor", smGVK); err != nil {
			return err
		}
	}
	for _, o := range objs {
		// The state ConfigMap may be made before the proxy (by the
		// replicas' administrator, or the upstream reconciler): it is
		// adopted. Any other object of the proxy's names must be its own.
		if o != client.Object(state) {
			if err := r.notTaken(ctx, p, o); err != nil {
				return err
			}
		}
		if err := r.apply(ctx, p, o); err != nil {
			return fmt.Errorf("applying %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// apply server-side applies o, owned by p.
func (r *ProxyReconciler) apply(ctx context.Context, p *v1alpha1.SentinelProxy, o client.Object) error {
	gvk, err := apiutil.GVKForObject(o, r.Scheme())
	if err != nil {
		return err
	}
	if err := controllerutil.SetControllerReference(p, o, r.Scheme()); err != nil {
		return err
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return err
		}
		u = &unstructured.Unstructured{Object: m}
		delete(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	}
	u.SetGroupVersionKind(gvk)
	return r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership)
}

// notTaken returns an error when an object of o's kind and name exists
// and p does not control it. The names of a proxy's objects are
// predictable (the proxy's name and suffixes), so whoever may create a
// SentinelProxy could otherwise name it after an existing Deployment,
// Service or RoleBinding it may not write, and the server-side apply
// (which forces ownership) would replace its template or selector (the
// Service's traffic to the proxy's pods) and make it the proxy's.
func (r *ProxyReconciler) notTaken(ctx context.Context, p *v1alpha1.SentinelProxy, o client.Object) error {
	gvk, err := apiutil.GVKForObject(o, r.Scheme())
	if err != nil {
		return err
	}
	cur := &metav1.PartialObjectMetadata{}
	cur.SetGroupVersionKind(gvk)
	if err := r.Reader.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	if !metav1.IsControlledBy(cur, p) {
		return fmt.Errorf("%s %s/%s exists and is not SentinelProxy %s's (no controller reference to it): it is left alone; delete or rename it",
			gvk.Kind, o.GetNamespace(), o.GetName(), p.Name)
	}
	return nil
}

// deleteOwned deletes p's object of that kind (named like p) when p owns it.
func (r *ProxyReconciler) deleteOwned(ctx context.Context, p *v1alpha1.SentinelProxy, what string, gvk schema.GroupVersionKind) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, u); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return nil
		}
		return fmt.Errorf("reading %s %s: %w", what, p.Name, err)
	}
	if !metav1.IsControlledBy(u, p) {
		return nil
	}
	return client.IgnoreNotFound(r.Delete(ctx, u))
}

// replicas returns the replicas of p: the endpoints of its ops
// Service's EndpointSlices (not terminating), on the admin-api port.
func (r *ProxyReconciler) replicas(ctx context.Context, p *v1alpha1.SentinelProxy) ([]Replica, error) {
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(p.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: p.Name + v1alpha1.OpsSuffix}); err != nil {
		return nil, fmt.Errorf("listing the EndpointSlices of %s%s: %w", p.Name, v1alpha1.OpsSuffix, err)
	}
	return adminEndpoints(slices.Items), nil
}

// failed records a failure on p's status and returns err.
func (r *ProxyReconciler) failed(ctx context.Context, p *v1alpha1.SentinelProxy, cfg *render.Config, reason string, err error) error {
	r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, reason, "Reconcile", "%v", err)
	return errors.Join(err, r.setProxyStatus(ctx, p, cfg, nil, reason, err.Error()))
}

// setProxyStatus writes p's status: with a failure reason, Ready False
// and Degraded; else from the replicas' results.
func (r *ProxyReconciler) setProxyStatus(ctx context.Context, p *v1alpha1.SentinelProxy, cfg *render.Config, results []ReplicaResult, reason, msg string) error {
	st := &p.Status
	gen := p.Generation
	progressing := metav1.ConditionFalse
	preason, pmsg := "Reconciled", "every replica reached applied the revision"
	if cfg != nil {
		st.ConfigRevision = cfg.Revision
		st.Routes, st.Agents, st.Upstreams = int32(len(cfg.Routes)), int32(len(cfg.Agents)), int32(len(cfg.Upstreams))
	}
	if reason == "" {
		bad := notUpdated(results)
		st.Replicas, st.UpdatedReplicas, st.NotUpdated = int32(len(results)), int32(len(results)-len(bad)), bad
		switch {
		case len(results) == 0:
			reason, msg = "NoReplicas", "no replica in the EndpointSlices of Service "+p.Name+v1alpha1.OpsSuffix+" yet"
			progressing, preason, pmsg = metav1.ConditionTrue, "WaitingForReplicas", msg
		case len(bad) > 0:
			reason = "ReplicasNotUpdated"
			msg = fmt.Sprintf("%d of %d replicas did not apply revision %s: %s", len(bad), len(results), cfg.Revision, describe(bad))
			progressing, preason, pmsg = metav1.ConditionTrue, "Reloading", msg
		default:
			reason = "Applied"
			msg = fmt.Sprintf("revision %s applied by %d replicas (%d routes, %d agents, %d upstreams)", cfg.Revision, len(results), len(cfg.Routes), len(cfg.Agents), len(cfg.Upstreams))
			if n := len(cfg.Rejected); n > 0 {
				msg += fmt.Sprintf("; %d resources left out (see their status)", n)
			}
		}
	}
	ready, degraded, dreason := metav1.ConditionFalse, metav1.ConditionTrue, reason
	if reason == "Applied" {
		ready, degraded, dreason = metav1.ConditionTrue, metav1.ConditionFalse, "AsSpecified"
	}
	if reason == "NoReplicas" {
		degraded, dreason = metav1.ConditionFalse, "AsSpecified"
	}
	for _, c := range []metav1.Condition{
		{Type: v1alpha1.ConditionReady, Status: ready, Reason: reason, Message: msg, ObservedGeneration: gen},
		{Type: v1alpha1.ConditionProgressing, Status: progressing, Reason: preason, Message: pmsg, ObservedGeneration: gen},
		{Type: v1alpha1.ConditionDegraded, Status: degraded, Reason: dreason, Message: msg, ObservedGeneration: gen},
	} {
		meta.SetStatusCondition(&st.Conditions, c)
	}
	st.ObservedGeneration = gen
	return client.IgnoreNotFound(r.Status().Update(ctx, p))
}

// describe lists replicas and their reasons, briefly.
func describe(bad []v1alpha1.ReplicaStatus) string {
	parts := make([]string, 0, len(bad))
	for _, b := range bad {
		parts = append(parts, b.Address+" "+b.Reason)
	}
	return strings.Join(parts, ", ")
}

// setRenderStatuses writes the status of p's routes and agents: Ready
// when in the configuration every replica applied, Progressing while
// replicas reload, Ready False Rejected with the adapter's findings.
func (r *ProxyReconciler) setRenderStatuses(ctx context.Context, p *v1alpha1.SentinelProxy, cfg *render.Config, routes []v1alpha1.SentinelRoute, agents []v1alpha1.SentinelAgent, results []ReplicaResult) error {
	pending := len(notUpdated(results)) > 0 || len(results) == 0
	status := func(kind, name string) (ready metav1.ConditionStatus, reason, msg string) {
		for _, rej := range cfg.Rejected {
			if rej.Kind == kind && rej.Name == name {
				return metav1.ConditionFalse, "Rejected", fmt.Sprintf("SentinelProxy %s: %v", p.Name, rej.Err)
			}
		}
		if pending {
			return metav1.ConditionFalse, "Reloading", fmt.Sprintf("in SentinelProxy %s revision %s; %d of %d replicas applied it", p.Name, cfg.Revision, len(results)-len(notUpdated(results)), len(results))
		}
		return metav1.ConditionTrue, "Applied", fmt.Sprintf("in SentinelProxy %s revision %s, applied by %d replicas", p.Name, cfg.Revision, len(results))
	}
	var errs []error
	for i := range routes {
		ready, reason, msg := status("SentinelRoute", routes[i].Name)
		errs = append(errs, r.updateRenderStatus(ctx, &routes[i], &routes[i].Status, p.Name, ready, reason, msg))
	}
	for i := range agents {
		ready, reason, msg := status("SentinelAgent", agents[i].Name)
		errs = append(errs, r.updateRenderStatus(ctx, &agents[i], &agents[i].Status, p.Name, ready, reason, msg))
	}
	return errors.Join(errs...)
}

// updateRenderStatus sets one route's or agent's status (when it
// changed): conditions, and proxy in Proxies unless rejected.
func (r *ProxyReconciler) updateRenderStatus(ctx context.Context, o client.Object, st *v1alpha1.RenderStatus, proxy string, ready metav1.ConditionStatus, reason, msg string) error {
	before := st.DeepCopy()
	gen := o.GetGeneration()
	progressing, preason := metav1.ConditionFalse, "Reconciled"
	if reason == "Reloading" {
		progressing, preason = metav1.ConditionTrue, "Reloading"
	}
	degraded, dreason := metav1.ConditionFalse, "AsSpecified"
	if reason == "Rejected" {
		degraded, dreason = metav1.ConditionTrue, reason
	}
	for _, c := range []metav1.Condition{
		{Type: v1alpha1.ConditionReady, Status: ready, Reason: reason, Message: msg, ObservedGeneration: gen},
		{Type: v1alpha1.ConditionProgressing, Status: progressing, Reason: preason, Message: msg, ObservedGeneration: gen},
		{Type: v1alpha1.ConditionDegraded, Status: degraded, Reason: dreason, Message: msg, ObservedGeneration: gen},
	} {
		meta.SetStatusCondition(&st.Conditions, c)
	}
	st.ObservedGeneration = gen
	st.Proxies = slices.DeleteFunc(st.Proxies, func(s string) bool { return s == proxy })
	if reason != "Rejected" {
		st.Proxies = append(st.Proxies, proxy)
		slices.Sort(st.Proxies)
	}
	if equalStatus(before, st) {
		return nil
	}
	return client.IgnoreNotFound(r.Status().Update(ctx, o))
}

// equalStatus compares two statuses, ignoring condition times.
func equalStatus(a, b *v1alpha1.RenderStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || !slices.Equal(a.Proxies, b.Proxies) || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, c := range a.Conditions {
		d := meta.FindStatusCondition(b.Conditions, c.Type)
		if d == nil || d.Status != c.Status || d.Reason != c.Reason || d.Message != c.Message || d.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	return true
}

// replicaKey keys the revision a replica applied last.
type replicaKey struct {
	proxy types.NamespacedName
	addr  string
}

// appliedRevisions remembers what each replica applied, so that a
// reconcile reloads only the replicas behind (a replica that restarts
// reads the current file itself).
type appliedRevisions struct {
	mu sync.Mutex
	m  map[replicaKey]string
}
