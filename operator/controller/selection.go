package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// selector is a SentinelRoute or a SentinelAgent.
type selector interface {
	client.Object
	Selection() v1alpha1.ProxySelection
	RenderState() *v1alpha1.RenderStatus
}

// SelectionReconciler keeps what the proxy reconciler cannot see in the
// status of SentinelRoutes or SentinelAgents (T): the proxies that no
// longer select them are taken out of status.proxies, and one selecting
// no proxy is Ready False NoProxySelected.
type SelectionReconciler[T any, PT interface {
	*T
	selector
}] struct {
	client.Client
	// Kind names T in names and messages.
	Kind string

	several bool
}

// SetupWithManager registers the reconciler: the objects, and the
// SentinelProxies of their namespace (created, deleted, relabelled).
func (r *SelectionReconciler[T, PT]) SetupWithManager(mgr ctrl.Manager, list func() client.ObjectList, items func(client.ObjectList) []client.Object) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(PT(new(T)), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.SentinelProxy{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			l := list()
			if err := r.List(ctx, l, client.InNamespace(o.GetNamespace())); err != nil {
				return nil
			}
			var out []reconcile.Request
			for _, it := range items(l) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(it)})
			}
			return out
		}), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) },
		})).
		Named("selection-" + r.Kind).
		WithOptions(controller.Options{SkipNameValidation: &r.several}).
		Complete(r)
}

// Reconcile prunes status.proxies and reports NoProxySelected.
func (r *SelectionReconciler[T, PT]) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	o := PT(new(T))
	if err := r.Get(ctx, req.NamespacedName, o); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var proxies v1alpha1.SentinelProxyList
	if err := r.List(ctx, &proxies, client.InNamespace(o.GetNamespace())); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing SentinelProxies: %w", err)
	}
	var names []string
	for i := range proxies.Items {
		if selects(o.Selection(), &proxies.Items[i]) && proxies.Items[i].DeletionTimestamp.IsZero() {
			names = append(names, proxies.Items[i].Name)
		}
	}
	st := o.RenderState()
	before := st.DeepCopy()
	st.Proxies = slices.DeleteFunc(st.Proxies, func(p string) bool { return !slices.Contains(names, p) })
	if len(names) == 0 {
		gen := o.GetGeneration()
		msg := "no SentinelProxy of namespace " + o.GetNamespace() + " is selected: it is in no configuration"
		for _, c := range []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "NoProxySelected", Message: msg, ObservedGeneration: gen},
			{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: "NoProxySelected", Message: msg, ObservedGeneration: gen},
			{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "NoProxySelected", Message: msg, ObservedGeneration: gen},
		} {
			meta.SetStatusCondition(&st.Conditions, c)
		}
		st.ObservedGeneration = gen
	}
	if equalStatus(before, st) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(r.Status().Update(ctx, o))
}
