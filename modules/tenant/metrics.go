package tenant

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func init() {
	caddy.RegisterModule(Metrics{})
}

// NamespaceLabel is the label the scoped metrics view adds to every
// series it shows.
const NamespaceLabel = "namespace"

// Metrics serves a namespace's view of the config's metrics (Prometheus
// text format): only the series whose `route`, `upstream` or `server`
// label is an id of the namespace (`team-a:…`), each labelled
// namespace="team-a". Series of other namespaces, global ones and those
// without such a label (process, Go runtime) are left out. The KDL
// adapter maps `builtin-handler "metrics"` in a namespace's route to it.
type Metrics struct {
	// Namespace is the namespace shown. Required.
	Namespace string `json:"namespace"`

	gatherer prometheus.Gatherer
}

// CaddyModule returns the Caddy module information.
func (Metrics) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.sentinel_namespace_metrics", New: func() caddy.Module { return new(Metrics) }}
}

// Provision finds the config's metrics registry.
func (m *Metrics) Provision(ctx caddy.Context) error {
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		m.gatherer = reg
	}
	return nil
}

// Validate checks the namespace.
func (m *Metrics) Validate() error {
	if m.Namespace == "" || strings.Contains(m.Namespace, ":") {
		return fmt.Errorf("namespace %q is not a namespace name", m.Namespace)
	}
	return nil
}

// scopedLabels are the labels whose value is a namespace-qualified id.
var scopedLabels = map[string]bool{"route": true, "upstream": true, "server": true}

// ServeHTTP writes the namespace's series.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	var families []*dto.MetricFamily
	if m.gatherer != nil {
		all, err := m.gatherer.Gather()
		if err != nil && len(all) == 0 {
			return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("gathering metrics: %w", err))
		}
		families = m.filter(all)
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}

// filter keeps the namespace's series, labelled with it.
func (m *Metrics) filter(all []*dto.MetricFamily) []*dto.MetricFamily {
	prefix := m.Namespace + ":"
	name, value := NamespaceLabel, m.Namespace
	var out []*dto.MetricFamily
	for _, f := range all {
		var kept []*dto.Metric
		for _, s := range f.Metric {
			mine := false
			for _, l := range s.Label {
				if scopedLabels[l.GetName()] {
					if !strings.HasPrefix(l.GetValue(), prefix) {
						mine = false
						break
					}
					mine = true
				}
			}
			if mine {
				labels := s.Label[:0:0]
				for _, l := range s.Label {
					if l.GetName() != NamespaceLabel {
						labels = append(labels, l)
					}
				}
				s.Label = append(labels, &dto.LabelPair{Name: &name, Value: &value})
				kept = append(kept, s)
			}
		}
		if len(kept) > 0 {
			f.Metric = kept
			out = append(out, f)
		}
	}
	return out
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Metrics)(nil)
	_ caddy.Provisioner           = (*Metrics)(nil)
	_ caddy.Validator             = (*Metrics)(nil)
)
