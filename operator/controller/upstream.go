// Package controller holds the Sentinel operator's reconcilers: they
// write what the cluster declares (SentinelUpstream targets, static or
// from a Service's EndpointSlices) into a proxy's shared state, the
// ConfigMap its replicas watch through `sentinel.stores.kubernetes`.
package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	"github.com/sentinel-proxy/sentinel/registry"
)

// StateLabel marks the state ConfigMaps the operator made; it watches
// only those.
const StateLabel = "sentinel.sentinel-proxy.io/state"

// StateKey is the ConfigMap key of the state (the store's default).
const StateKey = "state"

// Index names of the SentinelUpstream fields the watches look up.
const (
	indexService = "spec.service.name"
	indexState   = "stateName"
)

// conflictRetry is how soon a write that lost a race runs again.
const conflictRetry = 50 * time.Millisecond

// UpstreamReconciler writes SentinelUpstreams into their proxy's state.
type UpstreamReconciler struct {
	client.Client
	// Reader reads the state ConfigMaps without the cache, so that a
	// ConfigMap made by someone else (unlabelled) is found too.
	Reader client.Reader
	// Recorder emits Events on the SentinelUpstreams.
	Recorder events.EventRecorder
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	several bool
}

// SetupWithManager registers the reconciler and its watches: the
// SentinelUpstreams, the EndpointSlices of the Services they name, and
// the operator's state ConfigMaps (a change made through a replica's API
// to a managed upstream is put back: the cluster is the source of truth).
func (r *UpstreamReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ix := mgr.GetFieldIndexer()
	ctx := context.Background()
	if err := ix.IndexField(ctx, &v1alpha1.SentinelUpstream{}, indexService, func(o client.Object) []string {
		if s := o.(*v1alpha1.SentinelUpstream).Spec.Service; s != nil {
			return []string{s.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing SentinelUpstreams by service: %w", err)
	}
	if err := ix.IndexField(ctx, &v1alpha1.SentinelUpstream{}, indexState, func(o client.Object) []string {
		return []string{o.(*v1alpha1.SentinelUpstream).StateName()}
	}); err != nil {
		return fmt.Errorf("indexing SentinelUpstreams by proxy: %w", err)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SentinelUpstream{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexService, func(o client.Object) string {
			return o.GetLabels()[discoveryv1.LabelServiceName]
		}))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexState, client.Object.GetName)),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[StateLabel] == "true" }))).
		Named("sentinelupstream").
		WithOptions(controller.Options{SkipNameValidation: &r.several}).
		Complete(r)
}

// byIndex maps an object to the SentinelUpstreams of its namespace whose
// index field is key(object).
func (r *UpstreamReconciler) byIndex(index string, key func(client.Object) string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		k := key(o)
		if k == "" {
			return nil
		}
		var list v1alpha1.SentinelUpstreamList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: k}); err != nil {
			logf.FromContext(ctx).Error(err, "listing SentinelUpstreams", "index", index, "key", k)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, u := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: u.Namespace, Name: u.Name}})
		}
		return reqs
	}
}

// +kubebuilder:rbac:groups=sentinel.sentinel-proxy.io,resources=sentinelupstreams,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sentinel.sentinel-proxy.io,resources=sentinelupstreams/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sentinel.sentinel-proxy.io,resources=sentinelupstreams/finalizers,verbs=update
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile writes one SentinelUpstream's targets into its proxy's state,
// or takes them out when it is being deleted.
func (r *UpstreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var u v1alpha1.SentinelUpstream
	if err := r.Get(ctx, req.NamespacedName, &u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !u.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &u)
	}
	if controllerutil.AddFinalizer(&u, v1alpha1.Finalizer) {
		if err := r.Update(ctx, &u); err != nil {
			return ctrl.Result{}, err
		}
	}
	targets, reason, msg := r.desired(ctx, &u)
	if reason != "" {
		r.Recorder.Eventf(&u, nil, corev1.EventTypeWarning, reason, "Reconcile", msg)
		return ctrl.Result{}, r.setStatus(ctx, &u, metav1.ConditionFalse, reason, msg, -1, "")
	}
	changed, rev, err := r.edit(ctx, &u, func(s *state) bool { return s.set(u.ID(), targets, r.Now()) })
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	if err != nil {
		r.Recorder.Eventf(&u, nil, corev1.EventTypeWarning, "StateNotWritten", "Reconcile", "%v", err)
		return ctrl.Result{}, errors.Join(err, r.setStatus(ctx, &u, metav1.ConditionFalse, "StateNotWritten", err.Error(), -1, ""))
	}
	msg = fmt.Sprintf("%d targets in ConfigMap %s at revision %s", len(targets), u.StateName(), rev)
	if changed {
		r.Recorder.Eventf(&u, nil, corev1.EventTypeNormal, "Applied", "Reconcile", "%s", msg)
	}
	if len(targets) == 0 {
		return ctrl.Result{}, r.setStatus(ctx, &u, metav1.ConditionFalse, "NoReadyEndpoints", "Service "+u.Spec.Service.Name+" has no ready endpoint on that port: the proxy answers 503", 0, rev)
	}
	return ctrl.Result{}, r.setStatus(ctx, &u, metav1.ConditionTrue, "Applied", msg, len(targets), rev)
}

// finalize takes the upstream out of the state, then lets the object go.
func (r *UpstreamReconciler) finalize(ctx context.Context, u *v1alpha1.SentinelUpstream) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(u, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	_, _, err := r.edit(ctx, u, func(s *state) bool { return s.remove(u.ID()) })
	switch {
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	case apierrors.IsNotFound(err):
		// No state, nothing to take out.
	case err != nil:
		r.Recorder.Eventf(u, nil, corev1.EventTypeWarning, "StateNotWritten", "Delete", "removing upstream %s: %v", u.ID(), err)
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(u, v1alpha1.Finalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, u))
}

// edit applies change to the proxy's state ConfigMap with an update
// conditional on its resourceVersion (creating it when absent, except
// for a removal); it returns whether the state changed and the
// ConfigMap's resourceVersion. A state another writer changed in between
// gives a Conflict error: the caller runs again.
func (r *UpstreamReconciler) edit(ctx context.Context, u *v1alpha1.SentinelUpstream, change func(*state) bool) (bool, string, error) {
	var cm corev1.ConfigMap
	key := types.NamespacedName{Namespace: u.Namespace, Name: u.StateName()}
	err := r.Reader.Get(ctx, key, &cm)
	create := apierrors.IsNotFound(err)
	if create && !u.DeletionTimestamp.IsZero() {
		return false, "", err
	}
	if err != nil && !create {
		return false, "", fmt.Errorf("reading ConfigMap %s: %w", key, err)
	}
	s, err := parseState([]byte(cm.Data[StateKey]))
	if err != nil {
		return false, "", fmt.Errorf("ConfigMap %s: %w", key, err)
	}
	if !change(s) && !create && cm.Labels[StateLabel] == "true" {
		return false, cm.ResourceVersion, nil
	}
	data, err := s.encode()
	if err != nil {
		return false, "", err
	}
	if create {
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[StateLabel] = "true"
	cm.Labels["app.kubernetes.io/managed-by"] = "sentinel-operator"
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[StateKey] = string(data)
	if create {
		err = r.Create(ctx, &cm)
		if apierrors.IsAlreadyExists(err) {
			return false, "", apierrors.NewConflict(corev1.Resource("configmaps"), key.Name, err)
		}
	} else {
		err = r.Update(ctx, &cm) // carries the resourceVersion read: compare-and-swap
	}
	if err != nil {
		return false, "", err
	}
	return true, cm.ResourceVersion, nil
}

// desired computes the targets of u; reason and msg say why there are
// none to write (the state is then left alone).
func (r *UpstreamReconciler) desired(ctx context.Context, u *v1alpha1.SentinelUpstream) ([]registry.Target, string, string) {
	if u.Spec.Service == nil {
		out := make([]registry.Target, 0, len(u.Spec.Targets))
		for _, t := range u.Spec.Targets {
			out = append(out, target(t.Address, t.Weight, registry.StateActive))
		}
		return out, "", ""
	}
	svc := u.Spec.Service
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(u.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, "EndpointSlicesUnreadable", err.Error()
	}
	if len(slices.Items) == 0 {
		var s corev1.Service
		// Read past the cache: one get, no watch of every Service.
		if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: u.Namespace, Name: svc.Name}, &s); apierrors.IsNotFound(err) {
			return nil, "ServiceNotFound", fmt.Sprintf("Service %s/%s not found (nor EndpointSlices for it)", u.Namespace, svc.Name)
		}
	}
	return endpoints(slices.Items, svc), "", ""
}

// endpoints returns the targets of a Service's EndpointSlices (IPv4,
// IPv6 or FQDN addresses) on one port: ready endpoints are active, serving but terminating ones are
// draining, the others are left out. Sorted, each address once.
func endpoints(items []discoveryv1.EndpointSlice, svc *v1alpha1.ServiceTargets) []registry.Target {
	seen := map[string]registry.Target{}
	for _, sl := range items {
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			if (svc.Port != nil && *p.Port == *svc.Port) || (svc.PortName != nil && p.Name != nil && *p.Name == *svc.PortName) {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			state := registry.StateActive
			switch c := ep.Conditions; {
			case c.Ready == nil || *c.Ready:
			case c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating:
				state = registry.StateDraining
			default:
				continue
			}
			for _, a := range ep.Addresses {
				addr := net.JoinHostPort(a, strconv.Itoa(int(port)))
				if old, ok := seen[addr]; ok && old.State == registry.StateActive {
					continue
				}
				seen[addr] = target(addr, svc.Weight, state)
			}
		}
	}
	out := make([]registry.Target, 0, len(seen))
	for _, t := range seen {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b registry.Target) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// target makes a state target.
func target(addr string, weight int32, state registry.State) registry.Target {
	return registry.Target{Address: addr, Weight: int(max(weight, 1)), State: state, Origin: registry.OriginAPI}
}

// setStatus records the outcome: Ready with reason and message,
// Progressing False, Degraded its opposite; targets < 0 keeps the count.
func (r *UpstreamReconciler) setStatus(ctx context.Context, u *v1alpha1.SentinelUpstream, ready metav1.ConditionStatus, reason, msg string, targets int, rev string) error {
	gen := u.Generation
	degraded := metav1.ConditionFalse
	dreason := "AsSpecified"
	if ready != metav1.ConditionTrue {
		degraded, dreason = metav1.ConditionTrue, reason
	}
	for _, c := range []metav1.Condition{
		{Type: v1alpha1.ConditionReady, Status: ready, Reason: reason, Message: msg, ObservedGeneration: gen},
		{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: "Reconciled", Message: "the state holds the generation observed", ObservedGeneration: gen},
		{Type: v1alpha1.ConditionDegraded, Status: degraded, Reason: dreason, Message: msg, ObservedGeneration: gen},
	} {
		meta.SetStatusCondition(&u.Status.Conditions, c)
	}
	u.Status.ObservedGeneration = gen
	if targets >= 0 {
		u.Status.Targets = int32(targets)
	}
	if rev != "" {
		u.Status.StateRevision = rev
	}
	return client.IgnoreNotFound(r.Status().Update(ctx, u))
}
