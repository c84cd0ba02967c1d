package kubestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/sentinel-proxy/sentinel/registry"
)

// Replica reports (registry.FleetStore): each replica's report lives in
// a Lease of its own, "<configmap>-r-<hash of the replica id>", labelled
// FleetLabel=<configmap> (or its hash when longer than a label value),
// the report JSON in the annotation ReportAnnotation. The replica renews
// an unchanged report every fifth of reportTTL (the registry publishes
// every 200 ms: the API server is spared); a Lease not renewed for its duration
// (reportTTL) is a replica that stopped or is lost: it no longer counts,
// so it cannot hold a drain forever, and the next watcher deletes it.
//
// The replicas then need, besides the ConfigMap's rights, get, list,
// watch, create, update and delete on leases of their namespace.

const (
	// FleetLabel selects the Leases of one fleet.
	FleetLabel = "sentinel.sentinel-proxy.io/fleet"
	// ReportAnnotation holds a replica's report.
	ReportAnnotation = "sentinel.sentinel-proxy.io/report"
	// reportTTL is how long a report lives without a renewal.
	reportTTL = 10 * time.Second
	// liveCheck is how often WatchReports looks for expired reports.
	liveCheck = time.Second
)

// reports is the publishing state of one store instance.
type reports struct {
	mu      sync.Mutex
	lease   *coordinationv1.Lease
	last    string
	renewed time.Time
}

// fleetValue returns the label value of the fleet: the ConfigMap's name,
// or a hash of it when it is longer than a label value may be.
func (k *Kubernetes) fleetValue() string {
	if len(k.Name) <= 63 {
		return k.Name
	}
	return shortHash(k.Name)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// leaseName returns the Lease of a replica's report.
func (k *Kubernetes) leaseName(replica string) string {
	base := k.Name
	if len(base) > 200 {
		base = shortHash(base)
	}
	return base + "-r-" + shortHash(replica)
}

// PublishReport saves this replica's report, or renews its Lease when the
// report is the one saved last (at most every renewEvery).
func (k *Kubernetes) PublishReport(ctx context.Context, replica string, rep registry.ReplicaReport) error {
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	now := time.Now()
	k.reports.mu.Lock()
	defer k.reports.mu.Unlock()
	if k.reports.lease != nil && k.reports.last == string(data) && now.Sub(k.reports.renewed) < k.ttl/5 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(k.Timeout))
	defer cancel()
	l := k.reports.lease
	if l == nil {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.leaseName(replica), Namespace: k.Namespace, Labels: map[string]string{FleetLabel: k.fleetValue()}}}
	}
	l = l.DeepCopy()
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[ReportAnnotation] = string(data)
	ttl := int32(max(k.ttl/time.Second, 1))
	l.Spec = coordinationv1.LeaseSpec{HolderIdentity: &replica, LeaseDurationSeconds: &ttl, RenewTime: &metav1.MicroTime{Time: now}}
	var out *coordinationv1.Lease
	if l.ResourceVersion == "" {
		out, err = k.leases.Create(ctx, l)
		if apierrors.IsAlreadyExists(err) {
			// Ours from before a restart of this store: take it over.
			var cur *coordinationv1.Lease
			if cur, err = k.leases.Get(ctx, l.Name); err == nil {
				l.ResourceVersion = cur.ResourceVersion
				out, err = k.leases.Update(ctx, l)
			}
		}
	} else {
		out, err = k.leases.Update(ctx, l)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			k.reports.lease = nil // deleted as expired, or changed: start again next time
		}
	}
	if err != nil {
		return k.wrap("publishing the replica report in lease "+l.Name, err)
	}
	k.reports.lease, k.reports.last, k.reports.renewed = out, string(data), now
	return nil
}

// WithdrawReport deletes this replica's Lease.
func (k *Kubernetes) WithdrawReport(ctx context.Context, replica string) error {
	k.reports.mu.Lock()
	defer k.reports.mu.Unlock()
	k.reports.lease, k.reports.last = nil, ""
	ctx, cancel := context.WithTimeout(ctx, time.Duration(k.Timeout))
	defer cancel()
	if err := k.leases.Delete(ctx, k.leaseName(replica)); err != nil && !apierrors.IsNotFound(err) {
		return k.wrap("withdrawing the replica report", err)
	}
	return nil
}

// reportLease is one replica's Lease as WatchReports keeps it.
type reportLease struct {
	replica string
	report  registry.ReplicaReport
	expires time.Time
}

// WatchReports calls update with the live replicas' reports, first as
// they are, then after every change (a report changed, a replica gone or
// expired), until ctx is done. A watch that breaks lists them again.
func (k *Kubernetes) WatchReports(ctx context.Context, update func(map[string]registry.ReplicaReport)) {
	backoff := 100 * time.Millisecond
	var sent map[string]registry.ReplicaReport
	publish := func(m map[string]reportLease) {
		live := k.live(ctx, m)
		if sent == nil || !reflect.DeepEqual(live, sent) {
			sent = live
			update(maps.Clone(live))
		}
	}
	for ctx.Err() == nil {
		err := k.followLeases(ctx, publish)
		if err != nil && ctx.Err() == nil {
			k.logger.Warn("watching the fleet's replicas", zap.String("store", k.str), zap.Error(err))
		} else {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// followLeases lists the fleet's Leases and follows their changes until
// the watch ends, calling publish after each change and every liveCheck.
func (k *Kubernetes) followLeases(ctx context.Context, publish func(map[string]reportLease)) error {
	sel := FleetLabel + "=" + k.fleetValue()
	lctx, cancel := context.WithTimeout(ctx, time.Duration(k.Timeout))
	list, err := k.leases.List(lctx, metav1.ListOptions{LabelSelector: sel})
	cancel()
	if err != nil {
		return k.wrap("listing the replica reports", err)
	}
	m := map[string]reportLease{}
	for i := range list.Items {
		k.putLease(m, &list.Items[i])
	}
	publish(m)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := k.leases.Watch(wctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		return k.wrap("watching the replica reports", err)
	}
	defer w.Stop()
	tick := time.NewTicker(liveCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			publish(m)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil // ended by the API server: list again
			}
			switch ev.Type {
			case watch.Error:
				return k.wrap("watching the replica reports", apierrors.FromObject(ev.Object))
			case watch.Added, watch.Modified:
				if l, ok := ev.Object.(*coordinationv1.Lease); ok {
					k.putLease(m, l)
				}
			case watch.Deleted:
				if l, ok := ev.Object.(*coordinationv1.Lease); ok {
					delete(m, l.Name)
				}
			default:
				continue
			}
			publish(m)
		}
	}
}

// putLease decodes one replica's Lease into m; a report that cannot be
// read counts as a replica that has applied nothing (it holds drains
// until it publishes a good one or expires).
func (k *Kubernetes) putLease(m map[string]reportLease, l *coordinationv1.Lease) {
	r := reportLease{replica: l.Name}
	if l.Spec.HolderIdentity != nil {
		r.replica = *l.Spec.HolderIdentity
	}
	if err := json.Unmarshal([]byte(l.Annotations[ReportAnnotation]), &r.report); err != nil {
		k.logger.Warn("a replica's report is not readable", zap.String("lease", l.Name), zap.Error(fmt.Errorf("decoding annotation %s: %w", ReportAnnotation, err)))
		r.report = registry.ReplicaReport{}
	}
	if l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil {
		r.expires = l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	}
	m[l.Name] = r
}

// live returns the reports of the Leases not expired, by replica; it
// deletes the expired ones (best effort: another watcher may have).
func (k *Kubernetes) live(ctx context.Context, m map[string]reportLease) map[string]registry.ReplicaReport {
	now := time.Now()
	out := make(map[string]registry.ReplicaReport, len(m))
	for name, r := range m {
		if now.Before(r.expires) {
			out[r.replica] = r.report
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, time.Duration(k.Timeout))
		if err := k.leases.Delete(dctx, name); err != nil && !apierrors.IsNotFound(err) {
			k.logger.Debug("deleting an expired replica report", zap.String("lease", name), zap.Error(err))
		}
		cancel()
		delete(m, name)
	}
	return out
}

// leases is a client of the Leases of one namespace (client-go's REST
// client, like configMaps).
type leases struct {
	rc     *rest.RESTClient
	ns     string
	params runtime.ParameterCodec
}

// newLeases builds the client.
func newLeases(cfg *rest.Config, ns string) (*leases, error) {
	scheme := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(scheme, coordinationv1.SchemeGroupVersion)
	c := rest.CopyConfig(cfg)
	c.APIPath = "/apis"
	c.GroupVersion = &coordinationv1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &leases{rc: rc, ns: ns, params: runtime.NewParameterCodec(scheme)}, nil
}

func (c *leases) Get(ctx context.Context, name string) (*coordinationv1.Lease, error) {
	out := new(coordinationv1.Lease)
	return out, c.rc.Get().Namespace(c.ns).Resource("leases").Name(name).Do(ctx).Into(out)
}

func (c *leases) Create(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := new(coordinationv1.Lease)
	return out, c.rc.Post().Namespace(c.ns).Resource("leases").Body(l).Do(ctx).Into(out)
}

func (c *leases) Update(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := new(coordinationv1.Lease)
	return out, c.rc.Put().Namespace(c.ns).Resource("leases").Name(l.Name).Body(l).Do(ctx).Into(out)
}

func (c *leases) Delete(ctx context.Context, name string) error {
	return c.rc.Delete().Namespace(c.ns).Resource("leases").Name(name).Do(ctx).Error()
}

func (c *leases) List(ctx context.Context, opts metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	out := new(coordinationv1.LeaseList)
	return out, c.rc.Get().Namespace(c.ns).Resource("leases").VersionedParams(&opts, c.params).Do(ctx).Into(out)
}

func (c *leases) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(c.ns).Resource("leases").VersionedParams(&opts, c.params).Watch(ctx)
}

// Interface guard
var _ registry.FleetStore = (*Kubernetes)(nil)
