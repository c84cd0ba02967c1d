package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

// Replica reports (registry.FleetStore): each replica's report lives
// under <prefix>replicas/<id>, attached to a lease of reportTTL that the
// replica renews every second. A replica that stops or is lost drops out
// when its lease expires, so it cannot hold a drain forever.

// reportTTL is the lease of a replica's report, in seconds.
const reportTTL = 5

// reports is the publishing state of one store instance.
type reports struct {
	mu    sync.Mutex
	lease clientv3.LeaseID
	last  string
}

// reportsPrefix is where the replicas' reports live.
func (e *Etcd) reportsPrefix() string { return e.Prefix + "replicas/" }

// PublishReport saves this replica's report, or only renews its lease
// when the report is the one saved last.
func (e *Etcd) PublishReport(ctx context.Context, replica string, rep registry.ReplicaReport) error {
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	e.reports.mu.Lock()
	defer e.reports.mu.Unlock()
	if e.reports.lease != 0 {
		_, err := e.cli.KeepAliveOnce(ctx, e.reports.lease)
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			e.reports.lease, e.reports.last = 0, "" // expired: start again
		case err != nil:
			return wrap(err)
		case e.reports.last == string(data):
			return nil
		}
	}
	if e.reports.lease == 0 {
		g, err := e.cli.Grant(ctx, reportTTL)
		if err != nil {
			return wrap(err)
		}
		e.reports.lease = g.ID
	}
	if _, err := e.cli.Put(ctx, e.reportsPrefix()+replica, string(data), clientv3.WithLease(e.reports.lease)); err != nil {
		return wrap(err)
	}
	e.reports.last = string(data)
	return nil
}

// WithdrawReport removes this replica's report and its lease. A client
// already closing (the store is being released) has nothing to withdraw
// with: the lease expires on its own.
func (e *Etcd) WithdrawReport(ctx context.Context, replica string) error {
	e.reports.mu.Lock()
	defer e.reports.mu.Unlock()
	if e.cli.Ctx().Err() != nil {
		return nil
	}
	_, err := e.cli.Delete(ctx, e.reportsPrefix()+replica)
	if e.reports.lease != 0 {
		_, _ = e.cli.Revoke(ctx, e.reports.lease)
		e.reports.lease, e.reports.last = 0, ""
	}
	return wrap(err)
}

// WatchReports calls update with the live replicas' reports, first as
// they are, then after every change, until ctx is done. A watch that
// breaks or falls behind a compaction lists them again.
func (e *Etcd) WatchReports(ctx context.Context, update func(map[string]registry.ReplicaReport)) {
	prefix := e.reportsPrefix()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil && e.cli.Ctx().Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, time.Duration(e.DialTimeout))
		resp, err := e.cli.Get(lctx, prefix, clientv3.WithPrefix())
		cancel()
		if err == nil {
			m := map[string]registry.ReplicaReport{}
			for _, kv := range resp.Kvs {
				e.putReport(m, prefix, kv.Key, kv.Value)
			}
			update(maps.Clone(m))
			err = e.followReports(ctx, prefix, resp.Header.Revision, m, update)
		}
		if err != nil && !errors.Is(err, rpctypes.ErrCompacted) && ctx.Err() == nil {
			e.logger.Warn("watching the fleet's replicas", zap.String("store", e.name), zap.Error(err))
		} else if err == nil {
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

// followReports applies the changes after revision rev to m until the
// watch ends.
func (e *Etcd) followReports(ctx context.Context, prefix string, rev int64, m map[string]registry.ReplicaReport, update func(map[string]registry.ReplicaReport)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range e.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				e.putReport(m, prefix, ev.Kv.Key, ev.Kv.Value)
			case clientv3.EventTypeDelete:
				delete(m, strings.TrimPrefix(string(ev.Kv.Key), prefix))
			}
		}
		update(maps.Clone(m))
	}
	return ctx.Err()
}

// putReport decodes one replica's report into m; a report that cannot
// be read is logged and counts as a replica that has applied nothing
// (it holds drains until it publishes a good one).
func (e *Etcd) putReport(m map[string]registry.ReplicaReport, prefix string, key, value []byte) {
	id := strings.TrimPrefix(string(key), prefix)
	var rep registry.ReplicaReport
	if err := json.Unmarshal(value, &rep); err != nil {
		e.logger.Warn("a replica's report is not readable", zap.String("replica", id), zap.Error(fmt.Errorf("decoding %s: %w", key, err)))
		rep = registry.ReplicaReport{}
	}
	m[id] = rep
}

// Interface guard
var _ registry.FleetStore = (*Etcd)(nil)
