package worker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	runs        *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	queueWait   prometheus.Histogram
	inFlight    prometheus.Gauge
}

// runBuckets span a builtin run (milliseconds) to the 30-minute deadline.
var runBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "runs_total",
			Help: "Runs ended by this worker, by mode and terminal status.",
		}, []string{"mode", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "run_duration_seconds",
			Help: "Time from a run's pick-up to its end, by terminal status.", Buckets: runBuckets,
		}, []string{"status"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "queue_wait_seconds",
			Help: "Time from a run's creation to its first pick-up by a worker.", Buckets: runBuckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "runs_in_flight",
			Help: "Runs this worker is running now.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.runDuration, m.queueWait, m.inFlight)
	}
	return m
}
