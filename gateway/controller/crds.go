package controller

import (
	"context"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// optionalKind is a kind the Gateway controller watches once the API
// server serves it (its CRD is installed).
type optionalKind struct {
	gvk schema.GroupVersionKind
	obj client.Object
	h   handler.EventHandler
	// on, when set, is turned on (before the watch starts) so that the
	// reconciler reads the kind.
	on *atomic.Bool
}

// crdWatcher checks, every interval, whether the pending kinds are
// served now, and starts their watches; it ends when none is pending.
type crdWatcher struct {
	mgr     ctrl.Manager
	ctl     controller.Controller
	pending []*optionalKind
	every   time.Duration
}

var _ manager.Runnable = (*crdWatcher)(nil)

// Start implements manager.Runnable.
func (w *crdWatcher) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("gateway-crds")
	t := time.NewTicker(w.every)
	defer t.Stop()
	for len(w.pending) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var still []*optionalKind
		for _, k := range w.pending {
			if !served(w.mgr, k.gvk.GroupKind(), k.gvk.Version) {
				still = append(still, k)
				continue
			}
			if k.on != nil {
				k.on.Store(true)
			}
			// The watch's first list enqueues the Gateways concerned.
			if err := w.ctl.Watch(source.Kind(w.mgr.GetCache(), k.obj, k.h)); err != nil {
				logger.Error(err, "watching a kind installed after the start", "kind", k.gvk.String())
				still = append(still, k)
				continue
			}
			logger.Info("watching a kind installed after the start", "kind", k.gvk.String())
		}
		w.pending = still
	}
	return nil
}
