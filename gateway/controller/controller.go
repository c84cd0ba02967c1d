// Package controller is the Gateway API controller of the Sentinel
// operator: it accepts the GatewayClasses naming its controller, and for
// each of their Gateways translates the Gateway and its HTTPRoutes and GRPCRoutes
// (package gateway/translate) into a Sentinel configuration, delivers it
// to the Gateway's replicas (a Programmer) and writes the status the
// spec asks for on the GatewayClass, the Gateway and the routes. See
// docs/gateway-api.md.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/sentinel-proxy/sentinel/gateway/translate"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// DefaultControllerName is the GatewayClass controllerName Sentinel
// implements.
const DefaultControllerName gwv1.GatewayController = "sentinel-proxy.io/gateway-controller"

// Options configure the Gateway API controllers.
type Options struct {
	// ControllerName is the GatewayClass controllerName served
	// (default DefaultControllerName).
	ControllerName gwv1.GatewayController
	// Programmer delivers the configurations. Required.
	Programmer Programmer
	// SeveralInProcess gives the controllers unique names (tests run
	// several managers in one process).
	SeveralInProcess bool
	// CRDCheckInterval is how often the controller checks whether the
	// CRDs of the kinds it serves when installed (TLSRoute, TCPRoute,
	// SentinelProxy, SentinelAgent, SentinelPlugin) have been installed since it started
	// (default 30s).
	CRDCheckInterval time.Duration
	// Namespaces limit the controller's own cache (the metadata of the
	// ConfigMaps holding SentinelPlugins' modules) to these namespaces,
	// as the manager's (sentinel-operator --namespaces); empty: all.
	Namespaces []string
}

// Setup registers the Gateway API types in the manager's scheme and the
// GatewayClass and Gateway reconcilers with it.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.Programmer == nil {
		return errors.New("gateway controller: no Programmer")
	}
	if o.ControllerName == "" {
		o.ControllerName = DefaultControllerName
	}
	s := mgr.GetScheme()
	if err := gwv1.Install(s); err != nil {
		return fmt.Errorf("gateway controller: registering gateway.networking.k8s.io/v1: %w", err)
	}
	if err := gwv1beta1.Install(s); err != nil {
		return fmt.Errorf("gateway controller: registering gateway.networking.k8s.io/v1beta1: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return fmt.Errorf("gateway controller: registering %s: %w", v1alpha1.GroupVersion, err)
	}
	c := mgr.GetClient()
	gc := &classReconciler{c: c, r: mgr.GetAPIReader(), name: o.ControllerName}
	skip := ptrBool(o.SeveralInProcess)
	if err := ctrl.NewControllerManagedBy(mgr).Named("gatewayclass").
		WithOptions(controllerOpts(skip)).
		For(&gwv1.GatewayClass{}).Complete(gc); err != nil {
		return fmt.Errorf("gateway controller: %w", err)
	}
	gr := &gatewayReconciler{c: c, reader: mgr.GetAPIReader(), name: o.ControllerName, prog: o.Programmer}
	all := handler.EnqueueRequestsFromMapFunc(gr.allGateways)
	byRoute := handler.EnqueueRequestsFromMapFunc(routeGateways)
	b := ctrl.NewControllerManagedBy(mgr).Named("gateway").
		WithOptions(controllerOpts(skip)).
		For(&gwv1.Gateway{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&gwv1.GatewayClass{}, all).
		Watches(&gwv1.HTTPRoute{}, byRoute).
		Watches(&gwv1.GRPCRoute{}, byRoute).
		Watches(&corev1.Service{}, all).
		Watches(&discoveryv1.EndpointSlice{}, all).
		Watches(&corev1.Namespace{}, all).
		Watches(&gwv1beta1.ReferenceGrant{}, all)
	sentinel := func(kind string) schema.GroupVersionKind { return v1alpha1.GroupVersion.WithKind(kind) }
	optional := []*optionalKind{
		// TLSRoutes and TCPRoutes (v1): read and given status once their
		// CRDs are served.
		{gvk: schema.GroupVersionKind{Group: gwv1.GroupName, Version: "v1", Kind: "TLSRoute"}, obj: &gwv1.TLSRoute{}, h: byRoute, on: &gr.tlsRoutes},
		{gvk: schema.GroupVersionKind{Group: gwv1.GroupName, Version: "v1", Kind: "TCPRoute"}, obj: &gwv1.TCPRoute{}, h: byRoute, on: &gr.tcpRoutes},
		// The operator's: a SentinelProxy may give Gateways their
		// infrastructure; SentinelAgents are ExtensionRef filters.
		{gvk: sentinel("SentinelProxy"), obj: &v1alpha1.SentinelProxy{}, h: all},
		{gvk: sentinel("SentinelAgent"), obj: &v1alpha1.SentinelAgent{}, h: all, on: &gr.agents},
		// SentinelPlugins are ExtensionRef filters too (WASM).
		{gvk: sentinel("SentinelPlugin"), obj: &v1alpha1.SentinelPlugin{}, h: all, on: &gr.plugins},
	}
	// A cache of the controller's own, of metadata only: the ConfigMaps
	// holding SentinelPlugins' modules (the manager's cache may keep
	// only some ConfigMaps), so that a changed module reaches the
	// replicas, and the Secrets, so that a listener certificate created
	// or rotated after its Gateway reaches them, without the Secrets'
	// data ever being cached (secrets.go).
	co := cache.Options{Scheme: s, Mapper: mgr.GetRESTMapper(), ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Transform: secretIdentity},
	}}
	if len(o.Namespaces) > 0 {
		co.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			co.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	cms, err := cache.New(mgr.GetConfig(), co)
	if err != nil {
		return fmt.Errorf("gateway controller: the ConfigMap and Secret metadata cache: %w", err)
	}
	if err := mgr.Add(cms); err != nil {
		return fmt.Errorf("gateway controller: %w", err)
	}
	cmMeta := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
	b = b.WatchesRawSource(source.Kind[client.Object](cms, cmMeta, handler.EnqueueRequestsFromMapFunc(gr.pluginConfigMapGateways)))
	b = b.WatchesRawSource(source.Kind[client.Object](cms, secretMeta(), handler.EnqueueRequestsFromMapFunc(gr.secretGateways)))
	var pending []*optionalKind
	for _, k := range optional {
		if !served(mgr, k.gvk.GroupKind(), k.gvk.Version) {
			pending = append(pending, k)
			continue
		}
		if k.on != nil {
			k.on.Store(true)
		}
		b = b.Watches(k.obj, k.h)
	}
	ctl, err := b.Build(gr)
	if err != nil {
		return fmt.Errorf("gateway controller: %w", err)
	}
	if len(pending) > 0 {
		// CRDs installed after the start: watched once served.
		every := o.CRDCheckInterval
		if every <= 0 {
			every = 30 * time.Second
		}
		w := &crdWatcher{mgr: mgr, ctl: ctl, pending: pending, every: every}
		if err := mgr.Add(w); err != nil {
			return fmt.Errorf("gateway controller: %w", err)
		}
	}
	return nil
}

func ptrBool(b bool) *bool { return &b }

// served reports whether the API server serves gk in version.
func served(mgr ctrl.Manager, gk schema.GroupKind, version string) bool {
	_, err := mgr.GetRESTMapper().RESTMapping(gk, version)
	return err == nil
}

// classReconciler accepts the GatewayClasses of the controller.
type classReconciler struct {
	c    client.Client
	r    client.Reader // reads the SentinelProxy of a parametersRef
	name gwv1.GatewayController
}

// Reconcile implements reconcile.Reconciler.
func (r *classReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return reconcile.Result{}, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var gc gwv1.GatewayClass
		if err := r.c.Get(ctx, req.NamespacedName, &gc); err != nil {
			return client.IgnoreNotFound(err)
		}
		if gc.Spec.ControllerName != r.name {
			return nil
		}
		c := metav1.Condition{
			Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
			Reason: string(gwv1.GatewayClassReasonAccepted), Message: "Sentinel serves this class", ObservedGeneration: gc.Generation,
		}
		if ref := gc.Spec.ParametersRef; ref != nil {
			if msg := r.checkParameters(ctx, ref); msg != "" {
				c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(gwv1.GatewayClassReasonInvalidParameters), msg
			}
		}
		before := gc.Status.DeepCopy()
		meta.SetStatusCondition(&gc.Status.Conditions, c)
		gc.Status.SupportedFeatures = SupportedFeatures()
		if equalJSON(before, &gc.Status) {
			return nil
		}
		return r.c.Status().Update(ctx, &gc)
	})
}

// checkParameters returns why a class's parametersRef is invalid ("" when
// it names an existing SentinelProxy).
func (r *classReconciler) checkParameters(ctx context.Context, ref *gwv1.ParametersReference) string {
	if !sentinelProxyRef(string(ref.Group), string(ref.Kind)) || ref.Namespace == nil {
		return fmt.Sprintf("parametersRef must name a %s/SentinelProxy with its namespace, not %s/%s", v1alpha1.GroupVersion.Group, ref.Group, ref.Kind)
	}
	key := types.NamespacedName{Namespace: string(*ref.Namespace), Name: ref.Name}
	if err := r.r.Get(ctx, key, &v1alpha1.SentinelProxy{}); err != nil {
		if apierrors.IsNotFound(err) || isNoKind(err) {
			return fmt.Sprintf("parametersRef: SentinelProxy %s not found", key)
		}
		return fmt.Sprintf("parametersRef: reading SentinelProxy %s: %v", key, err)
	}
	return ""
}

// isNoKind reports an error for a kind the API server does not serve.
func isNoKind(err error) bool { return meta.IsNoMatchError(err) }

// gatewayReconciler programs the Gateways of the controller's classes.
type gatewayReconciler struct {
	c    client.Client
	name gwv1.GatewayController
	prog Programmer
	// tlsRoutes and tcpRoutes: the API server serves TLSRoutes,
	// TCPRoutes (watched, read and given status).
	tlsRoutes, tcpRoutes atomic.Bool
	// agents, plugins: the API server serves SentinelAgents,
	// SentinelPlugins (ExtensionRef).
	agents, plugins atomic.Bool
	// reader reads the ConfigMaps of SentinelPlugins (the API server:
	// the manager's cache may keep only some ConfigMaps).
	reader client.Reader
}

// allGateways maps any object to every Gateway.
func (r *gatewayReconciler) allGateways(ctx context.Context, _ client.Object) []reconcile.Request {
	var list gwv1.GatewayList
	if err := r.c.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, g := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: g.Namespace, Name: g.Name}})
	}
	return out
}

// Reconcile implements reconcile.Reconciler.
func (r *gatewayReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	logger := log.FromContext(ctx)
	var gw gwv1.Gateway
	if err := r.c.Get(ctx, req.NamespacedName, &gw); err != nil {
		if apierrors.IsNotFound(err) {
			if err := r.cleanRoutes(ctx, req.NamespacedName); err != nil {
				return reconcile.Result{}, err
			}
			return reconcile.Result{}, r.prog.Remove(ctx, req.NamespacedName)
		}
		return reconcile.Result{}, err
	}
	var gc gwv1.GatewayClass
	if err := r.c.Get(ctx, types.NamespacedName{Name: string(gw.Spec.GatewayClassName)}, &gc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if gc.Spec.ControllerName != r.name {
		return reconcile.Result{}, nil
	}
	in, err := r.gather(ctx, &gw)
	if err != nil {
		return reconcile.Result{}, err
	}
	bind, admin, err := r.prog.Target(ctx, &gw)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("gateway %s: finding its replicas: %w", req.NamespacedName, err)
	}
	in.BindHost, in.Admin = bind, admin
	out, err := translate.Translate(in)
	if err != nil {
		return reconcile.Result{}, err
	}
	var addrs []gwv1.GatewayStatusAddress
	var progErr error
	if mp, ok := r.prog.(ModuleProgrammer); ok {
		addrs, progErr = mp.ProgramModules(ctx, &gw, out.Config, out.Modules)
	} else {
		addrs, progErr = r.prog.Program(ctx, &gw, out.Config)
	}
	if progErr != nil {
		logger.Error(progErr, "programming the Gateway's replicas")
	}
	if err := r.writeGatewayStatus(ctx, &gw, out, addrs, progErr); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.writeRouteStatus(ctx, req.NamespacedName, in, out); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, progErr
}

// gather reads what the translation of gw needs.
func (r *gatewayReconciler) gather(ctx context.Context, gw *gwv1.Gateway) (*translate.Input, error) {
	in := &translate.Input{
		ControllerName: r.name,
		Gateway:        gw,
		Namespaces:     map[string]map[string]string{},
		Services:       map[types.NamespacedName]*corev1.Service{},
		EndpointSlices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		Secrets:        map[types.NamespacedName]*corev1.Secret{},
	}
	var routes gwv1.HTTPRouteList
	if err := r.c.List(ctx, &routes); err != nil {
		return nil, fmt.Errorf("listing HTTPRoutes: %w", err)
	}
	gwKey := types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}
	for i := range routes.Items {
		if refersToGateway(ctx, &routes.Items[i], gwKey) {
			in.Routes = append(in.Routes, &routes.Items[i])
		}
	}
	var grpcRoutes gwv1.GRPCRouteList
	if err := r.c.List(ctx, &grpcRoutes); err != nil {
		return nil, fmt.Errorf("listing GRPCRoutes: %w", err)
	}
	for i := range grpcRoutes.Items {
		if refersToGateway(ctx, &grpcRoutes.Items[i], gwKey) {
			in.GRPCRoutes = append(in.GRPCRoutes, &grpcRoutes.Items[i])
		}
	}
	if r.tlsRoutes.Load() {
		var ts gwv1.TLSRouteList
		if err := r.c.List(ctx, &ts); err != nil {
			return nil, fmt.Errorf("listing TLSRoutes: %w", err)
		}
		for i := range ts.Items {
			if refersToGateway(ctx, &ts.Items[i], gwKey) {
				in.TLSRoutes = append(in.TLSRoutes, &ts.Items[i])
			}
		}
	}
	if r.tcpRoutes.Load() {
		var ts gwv1.TCPRouteList
		if err := r.c.List(ctx, &ts); err != nil {
			return nil, fmt.Errorf("listing TCPRoutes: %w", err)
		}
		for i := range ts.Items {
			if refersToGateway(ctx, &ts.Items[i], gwKey) {
				in.TCPRoutes = append(in.TCPRoutes, &ts.Items[i])
			}
		}
	}
	var nss corev1.NamespaceList
	if err := r.c.List(ctx, &nss); err != nil {
		return nil, fmt.Errorf("listing Namespaces: %w", err)
	}
	for _, n := range nss.Items {
		in.Namespaces[n.Name] = n.Labels
	}
	var svcs corev1.ServiceList
	if err := r.c.List(ctx, &svcs); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		in.Services[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	var slices discoveryv1.EndpointSliceList
	if err := r.c.List(ctx, &slices); err != nil {
		return nil, fmt.Errorf("listing EndpointSlices: %w", err)
	}
	for i := range slices.Items {
		es := &slices.Items[i]
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			k := types.NamespacedName{Namespace: es.Namespace, Name: svc}
			in.EndpointSlices[k] = append(in.EndpointSlices[k], es)
		}
	}
	if r.agents.Load() {
		var agents v1alpha1.SentinelAgentList
		if err := r.c.List(ctx, &agents); err != nil {
			return nil, fmt.Errorf("listing SentinelAgents: %w", err)
		}
		in.Agents = map[types.NamespacedName]*v1alpha1.SentinelAgent{}
		for i := range agents.Items {
			a := &agents.Items[i]
			in.Agents[types.NamespacedName{Namespace: a.Namespace, Name: a.Name}] = a
		}
	}
	if r.plugins.Load() {
		if err := r.gatherPlugins(ctx, in); err != nil {
			return nil, err
		}
	}
	var grants gwv1beta1.ReferenceGrantList
	if err := r.c.List(ctx, &grants); err != nil {
		return nil, fmt.Errorf("listing ReferenceGrants: %w", err)
	}
	for _, g := range grants.Items {
		in.Grants = append(in.Grants, &gwv1.ReferenceGrant{ObjectMeta: g.ObjectMeta, Spec: gwv1.ReferenceGrantSpec(g.Spec)})
	}
	if err := r.gatherSecrets(ctx, gw, in.Grants, in.Secrets); err != nil {
		return nil, err
	}
	return in, nil
}

// writeGatewayStatus writes the Gateway's conditions, listeners and
// addresses.
func (r *gatewayReconciler) writeGatewayStatus(ctx context.Context, key *gwv1.Gateway, out *translate.Output, addrs []gwv1.GatewayStatusAddress, progErr error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var gw gwv1.Gateway
		if err := r.c.Get(ctx, client.ObjectKeyFromObject(key), &gw); err != nil {
			return client.IgnoreNotFound(err)
		}
		if gw.Generation != key.Generation {
			return nil // a newer spec: its own reconcile writes
		}
		before := gw.Status.DeepCopy()
		programmed := metav1.Condition{
			Type: string(gwv1.GatewayConditionProgrammed), Status: metav1.ConditionTrue,
			Reason: string(gwv1.GatewayReasonProgrammed), Message: "the replicas serve the Gateway", ObservedGeneration: gw.Generation,
		}
		var invalid *InvalidParametersError
		if errors.As(progErr, &invalid) {
			out.Accepted = metav1.Condition{Type: string(gwv1.GatewayConditionAccepted), Status: metav1.ConditionFalse,
				Reason: string(gwv1.GatewayReasonInvalidParameters), Message: invalid.Msg, ObservedGeneration: gw.Generation}
		}
		switch {
		case out.Accepted.Status != metav1.ConditionTrue:
			programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonInvalid), "the Gateway is not accepted"
		case progErr != nil:
			programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "the replicas do not serve the config yet: "+progErr.Error()
		case len(addrs) == 0:
			programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonAddressNotAssigned), "no address"
		}
		meta.SetStatusCondition(&gw.Status.Conditions, out.Accepted)
		meta.SetStatusCondition(&gw.Status.Conditions, programmed)
		var ls []gwv1.ListenerStatus
		for _, l := range out.Listeners {
			for _, old := range gw.Status.Listeners {
				if old.Name == l.Name {
					for _, c := range old.Conditions {
						// Keep the transition times of unchanged conditions.
						if nc := meta.FindStatusCondition(l.Conditions, c.Type); nc != nil && nc.Status == c.Status {
							nc.LastTransitionTime = c.LastTransitionTime
						}
					}
				}
			}
			for i := range l.Conditions {
				if l.Conditions[i].LastTransitionTime.IsZero() {
					l.Conditions[i].LastTransitionTime = metav1.Now()
				}
				if progErr != nil && l.Conditions[i].Type == string(gwv1.ListenerConditionProgrammed) && l.Conditions[i].Status == metav1.ConditionTrue {
					l.Conditions[i].Status, l.Conditions[i].Reason = metav1.ConditionFalse, string(gwv1.ListenerReasonPending)
				}
			}
			ls = append(ls, l)
		}
		gw.Status.Listeners = ls
		if progErr == nil {
			gw.Status.Addresses = addrs
		}
		if equalJSON(before, &gw.Status) {
			return nil
		}
		return r.c.Status().Update(ctx, &gw)
	})
}

// refString identifies a parentRef.
func refString(p gwv1.ParentReference) string {
	s := fmt.Sprintf("%v/%v/%v/%s", deref(p.Group), deref(p.Kind), deref(p.Namespace), p.Name)
	if p.SectionName != nil {
		s += "#" + string(*p.SectionName)
	}
	if p.Port != nil {
		s += fmt.Sprintf(":%d", *p.Port)
	}
	return s
}

func deref[T any](p *T) any {
	if p == nil {
		return ""
	}
	return *p
}
