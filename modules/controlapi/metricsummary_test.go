package controlapi

import (
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sentinel-proxy/sentinel/metrics"
)

// TestMetricsSummaryUpstreamsAndAgents: the summary carries each
// upstream's attempt duration histogram and each agent's decisions, call
// outcomes (failures: not ok, not canceled), skips and call durations,
// summed over the agent's events.
func TestMetricsSummaryUpstreamsAndAgents(t *testing.T) {
	reg := prometheus.NewRegistry()
	ups, err := metrics.NewUpstreams(reg)
	if err != nil {
		t.Fatal(err)
	}
	ups.For("web").Observe(0.002)
	ups.For("web").Observe(0.3)
	ups.For("api").Observe(20)
	// The agent series as modules/agents registers them.
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{Name: agentDecisionsName}, []string{"agent", "event", "decision"})
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: agentCallsName}, []string{"agent", "event", "outcome"})
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: agentSkippedName}, []string{"agent", "event", "reason"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: agentDurationName, Buckets: []float64{.001, .01}}, []string{"agent", "event"})
	reg.MustRegister(decisions, calls, skipped, latency)
	decisions.WithLabelValues("waf", "request_headers", "allow").Add(3)
	decisions.WithLabelValues("waf", "request_body", "allow").Add(1)
	decisions.WithLabelValues("waf", "request_headers", "block").Add(2)
	calls.WithLabelValues("waf", "request_headers", "ok").Add(5)
	calls.WithLabelValues("waf", "request_headers", "timeout").Add(1)
	calls.WithLabelValues("waf", "request_body", "breaker_open").Add(2)
	calls.WithLabelValues("waf", "request_body", "canceled").Add(7)
	skipped.WithLabelValues("waf", "request_body", "too_large").Inc()
	latency.WithLabelValues("waf", "request_headers").Observe(0.0005)
	latency.WithLabelValues("waf", "request_body").Observe(0.005)
	latency.WithLabelValues("auth", "request_headers").Observe(1)

	e := newEnv(t, func(_ *Config, h *Hooks) { h.Metrics = func() prometheus.Gatherer { return reg } })
	w := e.do(req{method: "GET", path: "/api/v1/metrics/summary", token: readToken})
	var got metricsSummary
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("summary: %d %s", w.Code, w.Body)
	}
	if len(got.Routes) != 0 || len(got.Upstreams) != 2 || len(got.Agents) != 2 {
		t.Fatalf("summary: %s", w.Body)
	}
	api, web := got.Upstreams[0], got.Upstreams[1]
	if api.Upstream != "api" || api.Attempts != 1 || web.Upstream != "web" || web.Attempts != 2 {
		t.Errorf("upstreams: %s", w.Body)
	}
	if n := len(web.Buckets); n != len(metrics.UpstreamBuckets)+1 || web.Buckets[n-1].LE != nil || web.Buckets[n-1].Count != 2 {
		t.Errorf("web's buckets: %s", w.Body)
	}
	// 2 ms is in the bucket of 2.5 ms, 300 ms in the one of 500 ms.
	for _, b := range web.Buckets {
		want := uint64(0)
		switch {
		case b.LE == nil || *b.LE >= 0.5:
			want = 2
		case *b.LE >= 0.0025:
			want = 1
		}
		if b.Count != want {
			t.Errorf("web: %d at most %v s, want %d", b.Count, b.LE, want)
		}
	}
	if api.Buckets[len(api.Buckets)-2].Count != 0 || api.Buckets[len(api.Buckets)-1].Count != 1 {
		t.Errorf("api's 20 s attempt is not only in +Inf: %s", w.Body)
	}

	auth, waf := got.Agents[0], got.Agents[1]
	if auth.Agent != "auth" || len(auth.Decisions) != 0 || auth.Buckets[2].Count != 1 || auth.Buckets[1].Count != 0 {
		t.Errorf("auth: %+v", auth)
	}
	if waf.Agent != "waf" || waf.Decisions["allow"] != 4 || waf.Decisions["block"] != 2 ||
		waf.Calls["ok"] != 5 || waf.Calls["canceled"] != 7 || waf.Failures != 3 || waf.Skipped != 1 {
		t.Errorf("waf: %+v", waf)
	}
	if len(waf.Buckets) != 3 || waf.Buckets[0].Count != 1 || waf.Buckets[1].Count != 2 || waf.Buckets[2].Count != 2 {
		t.Errorf("waf's durations are not summed over its events: %s", w.Body)
	}
}

// TestAddBucketsOtherBounds: a histogram whose bounds differ from the sum
// so far is left out rather than mixed in.
func TestAddBucketsOtherBounds(t *testing.T) {
	a := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "a", Buckets: []float64{1, 2}})
	b := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "b", Buckets: []float64{1, 3}})
	c := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "c", Buckets: []float64{1}})
	a.Observe(0.5)
	b.Observe(0.5)
	c.Observe(0.5)
	sum := addBuckets(nil, histOf(t, a))
	sum = addBuckets(sum, histOf(t, b))
	sum = addBuckets(sum, histOf(t, c))
	if len(sum) != 3 || sum[0].Count != 1 || sum[2].Count != 1 {
		t.Errorf("sum %+v", sum)
	}
}

func histOf(t *testing.T, h prometheus.Histogram) *dto.Histogram {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}
