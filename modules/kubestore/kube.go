// Package kubestore keeps the registry's API-made state in one Kubernetes
// ConfigMap: every replica of a fleet running in (or reaching) a cluster
// saves its control-plane changes there, the Sentinel operator writes the
// targets it reconciles there, and every replica applies the others'
// changes without a reload. See docs/fleet.md and docs/operator.md.
package kubestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/sentinel-proxy/sentinel/internal/kubeconfig"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Kubernetes{})
}

// Kubernetes is the `sentinel.stores.kubernetes` module: the registry's
// API-made state (targets, weights, drains, route switches, API-created
// upstreams) lives in one key of one ConfigMap. A change is saved with an
// update conditional on the ConfigMap's resourceVersion (the store's
// revision), and every replica watches the ConfigMap.
//
// Least privilege: the replicas need get, watch and update on that one
// ConfigMap (RBAC resourceNames), and create on configmaps only when
// nobody created it beforehand; for the fleet's replica reports (each in
// a Lease, reports.go), get, list, watch, create, update and delete on
// leases of the namespace.
type Kubernetes struct {
	// Kubeconfig is the path of a kubeconfig file. Empty: the in-cluster
	// configuration (the pod's service account).
	Kubeconfig string `json:"kubeconfig,omitempty"`

	// Context is the kubeconfig context to use (default: its current
	// context).
	Context string `json:"context,omitempty"`

	// Namespace of the ConfigMap. Default: the pod's namespace in a
	// cluster, else the kubeconfig context's, else "default".
	Namespace string `json:"namespace,omitempty"`

	// Name of the ConfigMap (required). With the operator it is
	// "<proxy>-state", the proxy's name being what SentinelUpstreams
	// reference.
	Name string `json:"name"`

	// Key of the ConfigMap's data holding the state. Default "state".
	Key string `json:"key,omitempty"`

	// Timeout bounds one request to the API server. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	cms    *configMaps
	leases *leases
	str    string
	logger *zap.Logger

	// last is the ConfigMap as last read or written: a save on its
	// revision updates it in one request.
	last *lastSeen

	// reports is this replica's report Lease (reports.go); ttl the
	// Leases' duration (reportTTL; shorter in tests).
	reports *reports
	ttl     time.Duration
}

// lastSeen is the ConfigMap last seen by a store.
type lastSeen struct {
	mu sync.Mutex
	cm *corev1.ConfigMap
}

// CaddyModule returns the Caddy module information.
func (Kubernetes) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sentinel.stores.kubernetes",
		New: func() caddy.Module { return new(Kubernetes) },
	}
}

// Provision builds the API client from the kubeconfig or the in-cluster
// configuration. It does not reach the API server: the registry reads the
// state when the configuration starts.
func (k *Kubernetes) Provision(ctx caddy.Context) error {
	k.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	k.Kubeconfig = repl.ReplaceAll(k.Kubeconfig, "")
	if k.Key == "" {
		k.Key = "state"
	}
	if k.Timeout == 0 {
		k.Timeout = caddy.Duration(5 * time.Second)
	}
	if err := k.Validate(); err != nil {
		return err
	}
	cfg, ns, err := k.restConfig()
	if err != nil {
		return err
	}
	if k.Namespace == "" {
		k.Namespace = ns
	}
	cfg.UserAgent = "sentinel-kubestore"
	// client-go's default (5 requests/s) would queue a burst of API
	// changes; the API server's own fairness still applies.
	cfg.QPS, cfg.Burst = 100, 200
	cms, err := newConfigMaps(cfg, k.Namespace)
	if err != nil {
		return fmt.Errorf("kubernetes: building the API client: %w", err)
	}
	k.cms = cms
	if k.leases, err = newLeases(cfg, k.Namespace); err != nil {
		return fmt.Errorf("kubernetes: building the API client: %w", err)
	}
	k.last = new(lastSeen)
	k.reports = new(reports)
	if k.ttl == 0 {
		k.ttl = reportTTL
	}
	k.str = fmt.Sprintf("kubernetes configmap %s/%s key %s", k.Namespace, k.Name, k.Key)
	return nil
}

// restConfig returns the client configuration and its default namespace.
func (k *Kubernetes) restConfig() (*rest.Config, string, error) {
	return kubeconfig.Load(k.Kubeconfig, k.Context)
}

// Validate checks the settings.
func (k *Kubernetes) Validate() error {
	if k.Name == "" {
		return errors.New("kubernetes: name (the ConfigMap holding the state) is required")
	}
	if errs := validation.IsDNS1123Subdomain(k.Name); len(errs) > 0 {
		return fmt.Errorf("kubernetes: name %q is not a ConfigMap name: %s", k.Name, strings.Join(errs, "; "))
	}
	if k.Namespace != "" {
		if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
			return fmt.Errorf("kubernetes: namespace %q: %s", k.Namespace, strings.Join(errs, "; "))
		}
	}
	if k.Key != "" {
		if errs := validation.IsConfigMapKey(k.Key); len(errs) > 0 {
			return fmt.Errorf("kubernetes: key %q: %s", k.Key, strings.Join(errs, "; "))
		}
	}
	if k.Timeout < 0 {
		return errors.New("kubernetes: timeout must not be negative")
	}
	return nil
}

// String names the store: the ConfigMap and key, never credentials.
func (k *Kubernetes) String() string { return k.str }

// Load returns the stored state (nil when none).
func (k *Kubernetes) Load() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(k.Timeout))
	defer cancel()
	data, _, err := k.LoadRevision(ctx)
	return data, err
}

// Save replaces the stored state whatever its revision. The registry uses
// SaveIf; Save is for tools.
func (k *Kubernetes) Save(data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(k.Timeout))
	defer cancel()
	_, rev, err := k.LoadRevision(ctx)
	if err != nil {
		return err
	}
	_, err = k.SaveIf(ctx, data, rev)
	return err
}

// LoadRevision returns the stored state and the ConfigMap's
// resourceVersion (0 when there is no ConfigMap; nil data when it has no
// state key).
func (k *Kubernetes) LoadRevision(ctx context.Context) ([]byte, int64, error) {
	cm, err := k.cms.Get(ctx, k.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, k.wrap("reading", err)
	}
	rev, err := revision(cm)
	if err != nil {
		return nil, 0, err
	}
	k.remember(cm)
	return stateOf(cm, k.Key), rev, nil
}

// remember keeps cm as the last ConfigMap seen when it is newer.
func (k *Kubernetes) remember(cm *corev1.ConfigMap) {
	rev, err := revision(cm)
	if err != nil {
		return
	}
	k.last.mu.Lock()
	defer k.last.mu.Unlock()
	if k.last.cm != nil {
		if old, _ := revision(k.last.cm); old >= rev {
			return
		}
	}
	k.last.cm = cm
}

// at returns a copy of the ConfigMap at revision rev when it was the last
// one seen, else nil.
func (k *Kubernetes) at(rev int64) *corev1.ConfigMap {
	k.last.mu.Lock()
	defer k.last.mu.Unlock()
	if k.last.cm == nil || k.last.cm.ResourceVersion != strconv.FormatInt(rev, 10) {
		return nil
	}
	return k.last.cm.DeepCopy()
}

// SaveIf stores data when the ConfigMap's resourceVersion is still rev
// (0: no ConfigMap yet, which is then created). The update carries rev
// as its resourceVersion, so the API server refuses it (409) when another
// writer came in between.
func (k *Kubernetes) SaveIf(ctx context.Context, data []byte, rev int64) (int64, error) {
	if rev == 0 {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "sentinel"}},
			Data:       map[string]string{k.Key: string(data)},
		}
		out, err := k.cms.Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("%s was created in between: %w", k.str, registry.ErrStale)
		}
		if err != nil {
			return 0, k.wrap("creating", err)
		}
		return revision(out)
	}
	cm := k.at(rev)
	if cm == nil {
		var err error
		cm, err = k.cms.Get(ctx, k.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("%s was deleted since revision %d: %w", k.str, rev, registry.ErrStale)
		}
		if err != nil {
			return 0, k.wrap("reading", err)
		}
	}
	want := strconv.FormatInt(rev, 10)
	if cm.ResourceVersion != want {
		return 0, fmt.Errorf("%s: revision %d was replaced: %w", k.str, rev, registry.ErrStale)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[k.Key] = string(data)
	out, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return 0, fmt.Errorf("%s: revision %d was replaced: %w", k.str, rev, registry.ErrStale)
	}
	if err != nil {
		return 0, k.wrap("updating", err)
	}
	k.remember(out)
	return revision(out)
}

// Watch calls apply with each state saved after revision from, until ctx
// is done. A watch the API server ends is resumed from the last revision
// seen; one that fell behind (410 Gone) starts again from the current
// state, which is applied.
func (k *Kubernetes) Watch(ctx context.Context, from int64, apply func(data []byte, rev int64)) {
	last := from
	resume := ""
	if from > 0 {
		resume = strconv.FormatInt(from, 10)
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		w, err := k.cms.Watch(ctx, metav1.ListOptions{
			FieldSelector:       fields.OneTermEqualSelector("metadata.name", k.Name).String(),
			ResourceVersion:     resume,
			AllowWatchBookmarks: true,
		})
		if err == nil {
			var gone bool
			last, gone = k.follow(ctx, w, last, apply)
			w.Stop()
			if gone {
				resume = "" // the current state, then what follows
			} else {
				resume = strconv.FormatInt(last, 10)
				backoff = 100 * time.Millisecond
				continue
			}
		} else if ctx.Err() == nil {
			k.logger.Warn("watching the shared state", zap.String("store", k.str), zap.Error(err))
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				resume = ""
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow applies the events of one watch until it ends; it returns the
// last revision seen and whether the watch fell behind.
func (k *Kubernetes) follow(ctx context.Context, w watch.Interface, last int64, apply func([]byte, int64)) (int64, bool) {
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) || ctx.Err() != nil {
				return last, true
			}
			k.logger.Warn("watching the shared state", zap.String("store", k.str), zap.Error(err))
			return last, true
		}
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		rev, err := revision(cm)
		if err != nil || rev <= last {
			continue
		}
		if ev.Type != watch.Bookmark {
			k.remember(cm)
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			apply(stateOf(cm, k.Key), rev)
		case watch.Deleted:
			apply(nil, rev)
		}
		last = rev
	}
	return last, false
}

// configMaps is a client of the ConfigMaps of one namespace. It is built
// on client-go's REST client with a scheme of the core group only: the
// typed clientset would link every API group into the proxy.
type configMaps struct {
	rc     *rest.RESTClient
	ns     string
	params runtime.ParameterCodec
}

// newConfigMaps builds the client.
func newConfigMaps(cfg *rest.Config, ns string) (*configMaps, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(scheme, corev1.SchemeGroupVersion)
	c := rest.CopyConfig(cfg)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &configMaps{rc: rc, ns: ns, params: runtime.NewParameterCodec(scheme)}, nil
}

// Get reads one ConfigMap.
func (c *configMaps) Get(ctx context.Context, name string, _ metav1.GetOptions) (*corev1.ConfigMap, error) {
	out := new(corev1.ConfigMap)
	err := c.rc.Get().Namespace(c.ns).Resource("configmaps").Name(name).Do(ctx).Into(out)
	return out, err
}

// Create makes a ConfigMap.
func (c *configMaps) Create(ctx context.Context, cm *corev1.ConfigMap, _ metav1.CreateOptions) (*corev1.ConfigMap, error) {
	out := new(corev1.ConfigMap)
	err := c.rc.Post().Namespace(c.ns).Resource("configmaps").Body(cm).Do(ctx).Into(out)
	return out, err
}

// Update replaces a ConfigMap; its resourceVersion makes it conditional.
func (c *configMaps) Update(ctx context.Context, cm *corev1.ConfigMap, _ metav1.UpdateOptions) (*corev1.ConfigMap, error) {
	out := new(corev1.ConfigMap)
	err := c.rc.Put().Namespace(c.ns).Resource("configmaps").Name(cm.Name).Body(cm).Do(ctx).Into(out)
	return out, err
}

// Watch watches the ConfigMaps that opts select.
func (c *configMaps) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(c.ns).Resource("configmaps").VersionedParams(&opts, c.params).Watch(ctx)
}

// stateOf returns the state in a ConfigMap (nil when the key is absent
// or empty).
func stateOf(cm *corev1.ConfigMap, key string) []byte {
	if s, ok := cm.Data[key]; ok && s != "" {
		return []byte(s)
	}
	if b, ok := cm.BinaryData[key]; ok && len(b) > 0 {
		return b
	}
	return nil
}

// revision reads a ConfigMap's resourceVersion as the store's revision.
// Kubernetes calls it opaque; the API server backed by etcd gives etcd's
// revision, an increasing integer, which the fleet's ordering relies on.
func revision(cm *corev1.ConfigMap) (int64, error) {
	rev, err := strconv.ParseInt(cm.ResourceVersion, 10, 64)
	if err != nil || rev <= 0 {
		return 0, fmt.Errorf("kubernetes: configmap %s/%s has resourceVersion %q, not an increasing integer", cm.Namespace, cm.Name, cm.ResourceVersion)
	}
	return rev, nil
}

// wrap names the store in an API error.
func (k *Kubernetes) wrap(what string, err error) error {
	return fmt.Errorf("kubernetes: %s %s: %w", what, k.str, err)
}

// Interface guards
var (
	_ caddy.Provisioner    = (*Kubernetes)(nil)
	_ caddy.Validator      = (*Kubernetes)(nil)
	_ registry.SharedStore = (*Kubernetes)(nil)
)
