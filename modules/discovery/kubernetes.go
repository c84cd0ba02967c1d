package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/sentinel-proxy/sentinel/internal/kubeconfig"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Kubernetes{})
}

// Kubernetes is the discovery `kubernetes`: the ready endpoints of a
// Service, read from its EndpointSlices (label
// kubernetes.io/service-name) and watched, so that a change is seen at
// once; the slices are listed again at least every refresh interval. The
// proxy needs the right to list and watch endpointslices
// (discovery.k8s.io) in the namespace.
type Kubernetes struct {
	// Namespace is the Service's namespace (default: the kubeconfig's,
	// or the pod's in a cluster).
	Namespace string `json:"namespace,omitempty"`
	// Service is the Service name.
	Service string `json:"service,omitempty"`
	// PortName is the name of the Service port to use; it may be empty
	// when the Service has one port.
	PortName string `json:"port_name,omitempty"`
	// Kubeconfig is a kubeconfig file; without it, the in-cluster
	// configuration (service account) is used.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// RefreshInterval is the longest time between two lists (default
	// 30s).
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	rc     *rest.RESTClient
	params runtime.ParameterCodec
	loop   *loop
}

// CaddyModule returns the Caddy module information.
func (Kubernetes) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.kubernetes", New: func() caddy.Module { return new(Kubernetes) }}
}

// Provision builds the API client: a REST client of the discovery.k8s.io
// group only (the typed clientset would link every API group into the
// proxy).
func (k *Kubernetes) Provision(ctx caddy.Context) error {
	if k.Service == "" {
		return errors.New("kubernetes: service is required")
	}
	cfg, ns, err := k.restConfig()
	if err != nil {
		return err
	}
	if k.Namespace == "" {
		k.Namespace = ns
	}
	scheme := runtime.NewScheme()
	if err := discoveryv1.AddToScheme(scheme); err != nil {
		return err
	}
	metav1.AddToGroupVersion(scheme, discoveryv1.SchemeGroupVersion)
	c := rest.CopyConfig(cfg)
	c.APIPath = "/apis"
	c.GroupVersion = &discoveryv1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if k.rc, err = rest.RESTClientFor(c); err != nil {
		return fmt.Errorf("kubernetes: building the API client: %w", err)
	}
	k.params = runtime.NewParameterCodec(scheme)
	k.loop, err = newLoop(ctx, "kubernetes")
	return err
}

// restConfig returns the client configuration and its default namespace.
func (k *Kubernetes) restConfig() (*rest.Config, string, error) {
	return kubeconfig.Load(k.Kubeconfig, "")
}

// Discover lists and watches the Service's EndpointSlices until ctx ends.
func (k *Kubernetes) Discover(ctx context.Context, upstream string, publish func([]registry.TargetSpec)) {
	k.loop.bind(upstream)
	every := interval(k.RefreshInterval, defaultRefresh)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		ts, rv, err := k.lookup(ctx)
		if ctx.Err() != nil {
			return
		}
		if !k.loop.report(ts, err, publish) && err != nil && !errors.Is(err, errEmpty) {
			retry.Reset(min(every, 5*time.Second))
			continue
		}
		k.wait(ctx, rv, every)
		retry.Reset(0)
	}
}

// selector selects the Service's EndpointSlices.
func (k *Kubernetes) selector() string {
	return discoveryv1.LabelServiceName + "=" + k.Service
}

// lookup lists the slices once; it returns the targets and the list's
// resource version.
func (k *Kubernetes) lookup(ctx context.Context) ([]registry.TargetSpec, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var list discoveryv1.EndpointSliceList
	err := k.rc.Get().Namespace(k.Namespace).Resource("endpointslices").
		VersionedParams(&metav1.ListOptions{LabelSelector: k.selector()}, k.params).Do(ctx).Into(&list)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: listing the endpointslices of service %s/%s: %w", k.Namespace, k.Service, err)
	}
	ts, err := k.targets(list.Items)
	return ts, list.ResourceVersion, err
}

// targets are the ready endpoints of the slices, on the chosen port.
func (k *Kubernetes) targets(slices []discoveryv1.EndpointSlice) ([]registry.TargetSpec, error) {
	var ts []registry.TargetSpec
	for _, s := range slices {
		if s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		port, err := k.port(s)
		if err != nil {
			return nil, err
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			if c.Ready != nil && !*c.Ready || c.Terminating != nil && *c.Terminating {
				continue
			}
			for _, a := range ep.Addresses {
				ts = append(ts, registry.TargetSpec{Address: net.JoinHostPort(a, strconv.Itoa(port))})
			}
		}
	}
	return ts, checkTargets(ts)
}

// port is the port of a slice named PortName (0 when the slice has
// none of that name).
func (k *Kubernetes) port(s discoveryv1.EndpointSlice) (int, error) {
	if k.PortName == "" && len(s.Ports) > 1 {
		return 0, fmt.Errorf("kubernetes: service %s/%s has %d ports: set port-name", k.Namespace, k.Service, len(s.Ports))
	}
	for _, p := range s.Ports {
		if p.Port == nil {
			continue
		}
		if k.PortName == "" || p.Name != nil && *p.Name == k.PortName {
			return int(*p.Port), nil
		}
	}
	return 0, nil
}

// wait watches the slices from resource version rv until a change, an
// error, ctx's end or every.
func (k *Kubernetes) wait(ctx context.Context, rv string, every time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, every)
	defer cancel()
	secs := int64(every / time.Second)
	opts := metav1.ListOptions{LabelSelector: k.selector(), ResourceVersion: rv, Watch: true, TimeoutSeconds: &secs}
	w, err := k.rc.Get().Namespace(k.Namespace).Resource("endpointslices").VersionedParams(&opts, k.params).Watch(ctx)
	if err != nil {
		<-ctx.Done() // list again at the next interval
		return
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type != watch.Bookmark {
			return
		}
	}
}

// Interface guards
var (
	_ caddy.Provisioner   = (*Kubernetes)(nil)
	_ registry.Discoverer = (*Kubernetes)(nil)
)
