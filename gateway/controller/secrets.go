package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The controller never caches a Secret's data: Secrets are watched as
// metadata only, in the controller's own cache (not the manager's), and
// stripped of everything but their identity (secretIdentity); the
// Secrets a Gateway's listeners name are read from the API server
// (the manager's API reader) at each reconcile and kept no longer.

// secretMeta is the type of the Secrets' metadata watch.
func secretMeta() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
}

// secretIdentity is the cache transform of the Secrets' metadata: only
// what identifies a Secret and its version is kept. Annotations go (a
// Secret applied with kubectl apply carries its whole data, base64, in
// kubectl.kubernetes.io/last-applied-configuration), and so do labels
// and managed fields.
func secretIdentity(in any) (any, error) {
	m, err := meta.Accessor(in)
	if err != nil {
		return in, nil // e.g. a tombstone: kept as is
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), DeletionTimestamp: m.GetDeletionTimestamp(),
		},
	}, nil
}

// certificateRefs returns the Secrets the listeners of gw name.
func certificateRefs(gw *gwv1.Gateway) []types.NamespacedName {
	var out []types.NamespacedName
	for _, l := range gw.Spec.Listeners {
		if l.TLS == nil {
			continue
		}
		for _, ref := range l.TLS.CertificateRefs {
			if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
				continue // not a Secret: the translation says so
			}
			ns := gw.Namespace
			if ref.Namespace != nil {
				ns = string(*ref.Namespace)
			}
			out = append(out, types.NamespacedName{Namespace: ns, Name: string(ref.Name)})
		}
	}
	return out
}

// gatherSecrets reads the Secrets the listeners of gw name past the
// cache into secrets: those of gw's namespace, and those of another
// namespace only when a ReferenceGrant there lets gw's namespace's
// Gateways use them (the others are not read at all: the translation
// reports RefNotPermitted without them). A missing Secret is left out
// (the translation reports it on the listener).
func (r *gatewayReconciler) gatherSecrets(ctx context.Context, gw *gwv1.Gateway, grants []*gwv1.ReferenceGrant, secrets map[types.NamespacedName]*corev1.Secret) error {
	for _, k := range certificateRefs(gw) {
		if _, ok := secrets[k]; ok {
			continue
		}
		if k.Namespace != gw.Namespace && !secretGranted(grants, gw.Namespace, k) {
			continue
		}
		var s corev1.Secret
		if err := r.reader.Get(ctx, k, &s); err == nil {
			secrets[k] = &s
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading Secret %s: %w", k, err)
		}
	}
	return nil
}

// secretGranted reports whether a ReferenceGrant in k's namespace lets
// the Gateways of namespace from use Secret k (the rule of
// gateway/translate, which decides; this only spares reading the
// Secrets it would refuse).
func secretGranted(grants []*gwv1.ReferenceGrant, from string, k types.NamespacedName) bool {
	for _, g := range grants {
		if g.Namespace != k.Namespace {
			continue
		}
		fromOK := false
		for _, f := range g.Spec.From {
			if f.Group == gwv1.GroupName && f.Kind == "Gateway" && string(f.Namespace) == from {
				fromOK = true
				break
			}
		}
		if !fromOK {
			continue
		}
		for _, t := range g.Spec.To {
			if t.Group == "" && t.Kind == "Secret" && (t.Name == nil || string(*t.Name) == k.Name) {
				return true
			}
		}
	}
	return false
}

// secretGateways maps a Secret (its metadata) to the Gateways whose
// listeners name it.
func (r *gatewayReconciler) secretGateways(ctx context.Context, o client.Object) []reconcile.Request {
	var list gwv1.GatewayList
	if err := r.c.List(ctx, &list); err != nil {
		return nil
	}
	key := types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
	var out []reconcile.Request
	for i := range list.Items {
		for _, k := range certificateRefs(&list.Items[i]) {
			if k == key {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
				break
			}
		}
	}
	return out
}
