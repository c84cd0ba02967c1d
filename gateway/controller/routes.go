package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/translate"
)

// routeParts returns a route's parentRefs and status (nil for an object
// that is not a route of a kind served).
func routeParts(o client.Object) ([]gwv1.ParentReference, *gwv1.RouteStatus) {
	switch rt := o.(type) {
	case *gwv1.HTTPRoute:
		return rt.Spec.ParentRefs, &rt.Status.RouteStatus
	case *gwv1.GRPCRoute:
		return rt.Spec.ParentRefs, &rt.Status.RouteStatus
	case *gwv1.TLSRoute:
		return rt.Spec.ParentRefs, &rt.Status.RouteStatus
	case *gwv1.TCPRoute:
		return rt.Spec.ParentRefs, &rt.Status.RouteStatus
	}
	return nil, nil
}

// routeGateways maps a route (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute) to the Gateways it
// references now or did (its status).
func routeGateways(_ context.Context, o client.Object) []reconcile.Request {
	refs, st := routeParts(o)
	if st == nil {
		return nil
	}
	seen := map[types.NamespacedName]bool{}
	add := func(p gwv1.ParentReference) {
		if p.Kind != nil && *p.Kind != "Gateway" {
			return
		}
		seen[parentKey(o, p)] = true
	}
	for _, p := range refs {
		add(p)
	}
	for _, p := range st.Parents {
		add(p.ParentRef)
	}
	out := make([]reconcile.Request, 0, len(seen))
	for k := range seen {
		out = append(out, reconcile.Request{NamespacedName: k})
	}
	return out
}

// refersToGateway reports whether route o references (or did) gwKey.
func refersToGateway(ctx context.Context, o client.Object, gwKey types.NamespacedName) bool {
	for _, k := range routeGateways(ctx, o) {
		if k.NamespacedName == gwKey {
			return true
		}
	}
	return false
}

// writeRouteStatus replaces, in each route referencing the Gateway, the
// controller's entries for the Gateway.
func (r *gatewayReconciler) writeRouteStatus(ctx context.Context, gwKey types.NamespacedName, in *translate.Input, out *translate.Output) error {
	for _, rt := range in.Routes {
		key := client.ObjectKeyFromObject(rt)
		if err := r.setRouteParents(ctx, &gwv1.HTTPRoute{}, key, gwKey, out.RouteParents[key]); err != nil {
			return err
		}
	}
	for _, rt := range in.GRPCRoutes {
		key := client.ObjectKeyFromObject(rt)
		if err := r.setRouteParents(ctx, &gwv1.GRPCRoute{}, key, gwKey, out.GRPCRouteParents[key]); err != nil {
			return err
		}
	}
	for _, rt := range in.TLSRoutes {
		key := client.ObjectKeyFromObject(rt)
		if err := r.setRouteParents(ctx, &gwv1.TLSRoute{}, key, gwKey, out.TLSRouteParents[key]); err != nil {
			return err
		}
	}
	for _, rt := range in.TCPRoutes {
		key := client.ObjectKeyFromObject(rt)
		if err := r.setRouteParents(ctx, &gwv1.TCPRoute{}, key, gwKey, out.TCPRouteParents[key]); err != nil {
			return err
		}
	}
	return nil
}

// cleanRoutes removes the entries for a deleted Gateway from the routes
// of every kind.
func (r *gatewayReconciler) cleanRoutes(ctx context.Context, gwKey types.NamespacedName) error {
	var objs []client.Object
	var hs gwv1.HTTPRouteList
	if err := r.c.List(ctx, &hs); err != nil {
		return err
	}
	for i := range hs.Items {
		objs = append(objs, &hs.Items[i])
	}
	var gs gwv1.GRPCRouteList
	if err := r.c.List(ctx, &gs); err != nil {
		return err
	}
	for i := range gs.Items {
		objs = append(objs, &gs.Items[i])
	}
	if r.tlsRoutes.Load() {
		var ts gwv1.TLSRouteList
		if err := r.c.List(ctx, &ts); err != nil {
			return err
		}
		for i := range ts.Items {
			objs = append(objs, &ts.Items[i])
		}
	}
	if r.tcpRoutes.Load() {
		var ts gwv1.TCPRouteList
		if err := r.c.List(ctx, &ts); err != nil {
			return err
		}
		for i := range ts.Items {
			objs = append(objs, &ts.Items[i])
		}
	}
	for _, o := range objs {
		_, st := routeParts(o)
		for _, p := range st.Parents {
			if p.ControllerName == r.name && parentKey(o, p.ParentRef) == gwKey {
				empty := o.DeepCopyObject().(client.Object)
				if err := r.setRouteParents(ctx, empty, client.ObjectKeyFromObject(o), gwKey, nil); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// parentKey is the namespace/name of parentRef p of route o.
func parentKey(o client.Object, p gwv1.ParentReference) types.NamespacedName {
	ns := o.GetNamespace()
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	return types.NamespacedName{Namespace: ns, Name: string(p.Name)}
}

// setRouteParents writes parents as the entries for gwKey of the route
// key, read into rt (an HTTPRoute or a GRPCRoute).
func (r *gatewayReconciler) setRouteParents(ctx context.Context, rt client.Object, key, gwKey types.NamespacedName, parents []gwv1.RouteParentStatus) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := r.c.Get(ctx, key, rt); err != nil {
			return client.IgnoreNotFound(err)
		}
		_, st := routeParts(rt)
		before := st.DeepCopy()
		var kept []gwv1.RouteParentStatus
		old := map[string][]metav1.Condition{}
		for _, p := range st.Parents {
			if p.ControllerName == r.name && parentKey(rt, p.ParentRef) == gwKey {
				old[refString(p.ParentRef)] = p.Conditions
				continue
			}
			kept = append(kept, p)
		}
		for _, p := range parents {
			p = *p.DeepCopy()
			conds := old[refString(p.ParentRef)]
			for _, c := range p.Conditions {
				c.ObservedGeneration = rt.GetGeneration()
				meta.SetStatusCondition(&conds, c)
			}
			// Keep only the conditions written now.
			var final []metav1.Condition
			for _, c := range conds {
				if meta.FindStatusCondition(p.Conditions, c.Type) != nil {
					final = append(final, c)
				}
			}
			p.Conditions = final
			kept = append(kept, p)
		}
		if kept == nil {
			kept = []gwv1.RouteParentStatus{}
		}
		st.Parents = kept
		if equalJSON(before, st) {
			return nil
		}
		return r.c.Status().Update(ctx, rt)
	})
}
