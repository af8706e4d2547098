package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

type workqueueT = workqueue.TypedRateLimitingInterface[reconcile.Request]

var (
	driftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flotilla_agent_drift_corrections_total", Help: "Objects re-applied because they drifted from Git, by Application.",
	}, []string{"application"})
	syncDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "flotilla_agent_sync_duration_seconds", Help: "Duration of one Application reconcile on the spoke.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})

	renderCacheBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flotilla_agent_render_cache_bytes", Help: "Bytes of renders kept between reconciles (bounded by --render-cache-bytes).",
	})
	renderCacheEvictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flotilla_agent_render_cache_evictions_total", Help: "Renders dropped to stay within --render-cache-bytes (each renders again at its next reconcile).",
	})
)

func init() {
	crmetrics.Registry.MustRegister(driftCorrections, syncDuration, renderCacheBytes, renderCacheEvictions)
}
