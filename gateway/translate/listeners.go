package translate

import (
	"crypto/tls"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// listener is a Gateway listener with what the validation found.
type listener struct {
	spec gwv1.Listener
	// accepted: config is generated for it.
	accepted bool
	// acceptedCond, resolvedCond and conflictedCond are its conditions.
	acceptedCond, resolvedCond, conflictedCond metav1.Condition
	// kinds are the route kinds it supports (of those asked for).
	kinds []gwv1.RouteGroupKind
	// attached counts the routes attached to it.
	attached int32
	// certs are the PEM certificate and key pairs of an HTTPS listener.
	certs []certPair
}

// certPair is a PEM certificate chain and its key.
type certPair struct{ cert, key string }

// routeKindHTTP and routeKindGRPC are the route kinds of this
// translation.
var (
	routeKindHTTP = gwv1.RouteGroupKind{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: "HTTPRoute"}
	routeKindGRPC = gwv1.RouteGroupKind{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: kindGRPCRoute}
)

func ptr[T any](v T) *T { return &v }

// validateListeners checks the Gateway's listeners: protocol, route
// kinds, certificates, conflicts.
func validateListeners(in *Input) []*listener {
	gw := in.Gateway
	gen := gw.Generation
	var ls []*listener
	for _, spec := range gw.Spec.Listeners {
		l := &listener{spec: spec, accepted: true}
		l.acceptedCond = cond(string(gwv1.ListenerConditionAccepted), true, string(gwv1.ListenerReasonAccepted), "the listener is accepted", gen)
		l.resolvedCond = cond(string(gwv1.ListenerConditionResolvedRefs), true, string(gwv1.ListenerReasonResolvedRefs), "every reference is resolved", gen)
		l.conflictedCond = cond(string(gwv1.ListenerConditionConflicted), false, string(gwv1.ListenerReasonNoConflicts), "no conflict", gen)
		switch spec.Protocol {
		case gwv1.HTTPProtocolType:
		case gwv1.HTTPSProtocolType:
			l.resolveCerts(in)
		case gwv1.TLSProtocolType:
			if spec.TLS == nil || spec.TLS.Mode == nil || *spec.TLS.Mode != gwv1.TLSModePassthrough {
				l.accepted = false
				l.acceptedCond = cond(string(gwv1.ListenerConditionAccepted), false, string(gwv1.ListenerReasonUnsupportedValue),
					"a TLS listener needs tls.mode Passthrough (TLS termination for TLSRoutes is not supported)", gen)
			}
		case gwv1.TCPProtocolType:
		default:
			l.accepted = false
			l.acceptedCond = cond(string(gwv1.ListenerConditionAccepted), false, string(gwv1.ListenerReasonUnsupportedProtocol),
				fmt.Sprintf("protocol %s is not supported (HTTP, HTTPS, TLS and TCP are)", spec.Protocol), gen)
		}
		l.resolveKinds(gen)
		if spec.Protocol == gwv1.TLSProtocolType && !l.accepted {
			// A TLS listener in a mode not supported supports no kind.
			l.kinds = []gwv1.RouteGroupKind{}
		}
		ls = append(ls, l)
	}
	// Conflicts: on one port, one protocol; for one protocol and port,
	// distinct hostnames.
	for i, a := range ls {
		for j, b := range ls {
			if i == j || a.spec.Port != b.spec.Port {
				continue
			}
			if a.spec.Protocol != b.spec.Protocol {
				a.conflict(string(gwv1.ListenerReasonProtocolConflict),
					fmt.Sprintf("listener %s uses port %d with protocol %s", b.spec.Name, b.spec.Port, b.spec.Protocol), gen)
			} else if hostOf(a.spec.Hostname) == hostOf(b.spec.Hostname) {
				a.conflict(string(gwv1.ListenerReasonHostnameConflict),
					fmt.Sprintf("listener %s uses port %d with the same hostname", b.spec.Name, b.spec.Port), gen)
			}
		}
	}
	return ls
}

func hostOf(h *gwv1.Hostname) string {
	if h == nil {
		return ""
	}
	return string(*h)
}

// conflict marks the listener conflicted (and not accepted).
func (l *listener) conflict(reason, msg string, gen int64) {
	l.accepted = false
	l.conflictedCond = cond(string(gwv1.ListenerConditionConflicted), true, reason, msg, gen)
	l.acceptedCond = cond(string(gwv1.ListenerConditionAccepted), false, string(gwv1.ListenerReasonAccepted), "the listener conflicts with another: "+msg, gen)
}

// resolveKinds computes the supported kinds and the ResolvedRefs
// condition's InvalidRouteKinds.
func (l *listener) resolveKinds(gen int64) {
	var supported []gwv1.RouteGroupKind
	switch l.spec.Protocol {
	case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType:
		supported = []gwv1.RouteGroupKind{routeKindHTTP, routeKindGRPC}
	case gwv1.TLSProtocolType:
		supported = []gwv1.RouteGroupKind{routeKindTLS}
	case gwv1.TCPProtocolType:
		supported = []gwv1.RouteGroupKind{routeKindTCP}
	}
	if l.spec.AllowedRoutes == nil || len(l.spec.AllowedRoutes.Kinds) == 0 {
		l.kinds = supported
		return
	}
	l.kinds = []gwv1.RouteGroupKind{}
	invalid := false
	for _, k := range l.spec.AllowedRoutes.Kinds {
		group := gwv1.GroupName
		if k.Group != nil {
			group = string(*k.Group)
		}
		found := false
		for _, s := range supported {
			if group == gwv1.GroupName && k.Kind == s.Kind {
				l.kinds = append(l.kinds, s)
				found = true
			}
		}
		if !found {
			invalid = true
		}
	}
	if invalid {
		var names []string
		for _, s := range supported {
			names = append(names, string(s.Kind))
		}
		l.resolvedCond = cond(string(gwv1.ListenerConditionResolvedRefs), false, string(gwv1.ListenerReasonInvalidRouteKinds),
			fmt.Sprintf("allowedRoutes.kinds names a kind this listener's protocol does not support (it supports %s)", strings.Join(names, ", ")), gen)
	}
}

// resolveCerts loads the HTTPS listener's certificates.
func (l *listener) resolveCerts(in *Input) {
	gw := in.Gateway
	gen := gw.Generation
	fail := func(reason gwv1.ListenerConditionReason, msg string) {
		l.resolvedCond = cond(string(gwv1.ListenerConditionResolvedRefs), false, string(reason), msg, gen)
	}
	if l.spec.TLS == nil || (l.spec.TLS.Mode != nil && *l.spec.TLS.Mode != gwv1.TLSModeTerminate) {
		l.accepted = false
		l.acceptedCond = cond(string(gwv1.ListenerConditionAccepted), false, string(gwv1.ListenerReasonUnsupportedValue),
			"an HTTPS listener needs tls.mode Terminate and certificateRefs", gen)
		return
	}
	if len(l.spec.TLS.CertificateRefs) == 0 {
		fail(gwv1.ListenerReasonInvalidCertificateRef, "tls.certificateRefs is empty")
		return
	}
	for i, ref := range l.spec.TLS.CertificateRefs {
		if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
			fail(gwv1.ListenerReasonInvalidCertificateRef, fmt.Sprintf("tls.certificateRefs[%d] is not a Secret", i))
			return
		}
		ns := gw.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		if ns != gw.Namespace && !granted(in.Grants, gwv1.GroupName, "Gateway", gw.Namespace, "", "Secret", ns, string(ref.Name)) {
			fail(gwv1.ListenerReasonRefNotPermitted,
				fmt.Sprintf("tls.certificateRefs[%d]: no ReferenceGrant in namespace %s allows this Gateway to use Secret %s", i, ns, ref.Name))
			return
		}
		s := in.Secrets[types.NamespacedName{Namespace: ns, Name: string(ref.Name)}]
		if s == nil {
			fail(gwv1.ListenerReasonInvalidCertificateRef, fmt.Sprintf("tls.certificateRefs[%d]: Secret %s/%s not found", i, ns, ref.Name))
			return
		}
		crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			// The error names what is wrong, never the key's bytes.
			fail(gwv1.ListenerReasonInvalidCertificateRef, fmt.Sprintf("tls.certificateRefs[%d]: Secret %s/%s has no valid tls.crt and tls.key pair", i, ns, ref.Name))
			return
		}
		l.certs = append(l.certs, certPair{cert: string(crt), key: string(key)})
	}
}

// allowsNamespace reports whether the listener accepts routes from ns.
func (l *listener) allowsNamespace(in *Input, ns string) bool {
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		sel = ar.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return ns == in.Gateway.Namespace
	case gwv1.NamespacesFromSelector:
		if sel == nil {
			return false
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		return s.Matches(labels.Set(in.Namespaces[ns]))
	}
	return false
}

// allowsKind reports whether the listener accepts routes of kind.
func (l *listener) allowsKind(kind string) bool {
	for _, k := range l.kinds {
		if string(k.Kind) == kind {
			return true
		}
	}
	return false
}

// status is the listener's status.
func (l *listener) status(gen int64) gwv1.ListenerStatus {
	programmed := cond(string(gwv1.ListenerConditionProgrammed), true, string(gwv1.ListenerReasonProgrammed), "the listener is programmed", gen)
	if !l.accepted || l.resolvedCond.Status != metav1.ConditionTrue {
		programmed = cond(string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), "the listener is not valid", gen)
	}
	return gwv1.ListenerStatus{
		Name:           l.spec.Name,
		SupportedKinds: l.kinds,
		AttachedRoutes: l.attached,
		Conditions:     []metav1.Condition{l.acceptedCond, l.resolvedCond, l.conflictedCond, programmed},
	}
}

// serving reports whether config is generated for the listener.
func (l *listener) serving() bool {
	return l.accepted && l.resolvedCond.Status == metav1.ConditionTrue
}
