package controller

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// LeaseName is the leader-election Lease of the operator.
const LeaseName = "sentinel-operator.sentinel.sentinel-proxy.io"

// Options configure the operator's manager.
type Options struct {
	// Namespaces limits the watches to these namespaces (all when empty).
	Namespaces []string
	// LeaderElection makes one of several operator replicas the active
	// one, with a Lease in LeaseNamespace.
	LeaderElection bool
	LeaseNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election
	// (controller-runtime's defaults, 15s/10s/2s, when zero).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddr and ProbeAddr are the listen addresses of /metrics and
	// of /healthz and /readyz ("0": off).
	MetricsAddr, ProbeAddr string
	// ReplicaTimeout bounds a reload of one replica (10 s when zero).
	ReplicaTimeout time.Duration
	// SeveralInProcess allows more than one operator in one process
	// (tests: controller names are otherwise unique per process).
	SeveralInProcess bool
	// KeepLeaseOnStop keeps the Lease when the operator stops, as a
	// crashed operator does (tests); by default a stopping leader
	// releases it and another takes over at once.
	KeepLeaseOnStop bool
}

// NewScheme returns the types the operator reads and writes.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// NewManager builds the operator: its manager with the SentinelUpstream
// reconciler. Its cache keeps only the state ConfigMaps it labelled.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	co := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{StateLabel: "true"})},
	}}
	if len(o.Namespaces) > 0 {
		co.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			co.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mo := ctrl.Options{
		Scheme:                        scheme,
		Cache:                         co,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       o.LeaseNamespace,
		LeaderElectionReleaseOnCancel: !o.KeepLeaseOnStop,
		Metrics:                       metricsserver.Options{BindAddress: orOff(o.MetricsAddr)},
		HealthProbeBindAddress:        orOff(o.ProbeAddr),
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("building the manager: %w", err)
	}
	if o.ProbeAddr != "" && o.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
	}
	r := &UpstreamReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("sentinel-operator"), several: o.SeveralInProcess}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	pr := &ProxyReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("sentinel-operator"),
		Replicas: &ReplicaClient{Timeout: o.ReplicaTimeout}, several: o.SeveralInProcess}
	if err := pr.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	routes := &SelectionReconciler[v1alpha1.SentinelRoute, *v1alpha1.SentinelRoute]{Client: mgr.GetClient(), Kind: "sentinelroute", several: o.SeveralInProcess}
	if err := routes.SetupWithManager(mgr, func() client.ObjectList { return &v1alpha1.SentinelRouteList{} }, func(l client.ObjectList) []client.Object {
		var out []client.Object
		for i := range l.(*v1alpha1.SentinelRouteList).Items {
			out = append(out, &l.(*v1alpha1.SentinelRouteList).Items[i])
		}
		return out
	}); err != nil {
		return nil, err
	}
	agents := &SelectionReconciler[v1alpha1.SentinelAgent, *v1alpha1.SentinelAgent]{Client: mgr.GetClient(), Kind: "sentinelagent", several: o.SeveralInProcess}
	if err := agents.SetupWithManager(mgr, func() client.ObjectList { return &v1alpha1.SentinelAgentList{} }, func(l client.ObjectList) []client.Object {
		var out []client.Object
		for i := range l.(*v1alpha1.SentinelAgentList).Items {
			out = append(out, &l.(*v1alpha1.SentinelAgentList).Items[i])
		}
		return out
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// orOff turns "" into "0" (off).
func orOff(addr string) string {
	if addr == "" {
		return "0"
	}
	return addr
}
