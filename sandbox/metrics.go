package sandbox

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span 100µs (a warm acquire) to 5 s (a slow gVisor boot).
var latencyBuckets = []float64{
	0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
}

// metrics are the pool's Prometheus metrics: oneshot_sandbox_*, in seconds.
// No label carries a run or sandbox id.
type metrics struct {
	createSeconds  *prometheus.HistogramVec // driver
	acquireSeconds *prometheus.HistogramVec // driver, result=hit|miss
	destroySeconds *prometheus.HistogramVec // driver
	warm           *prometheus.GaugeVec     // class
	misses         *prometheus.CounterVec   // driver
	oomKills       *prometheus.CounterVec   // driver
	createFailures *prometheus.CounterVec   // driver
}

func newMetrics(reg prometheus.Registerer) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "oneshot", Subsystem: "sandbox", Name: name, Help: help}
	}
	hist := func(name, help string, labels ...string) *prometheus.HistogramVec {
		o := opts(name, help)
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: o.Namespace, Subsystem: o.Subsystem, Name: o.Name, Help: o.Help, Buckets: latencyBuckets,
		}, labels)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
	}
	m := &metrics{
		createSeconds:  hist("create_duration_seconds", "Time to create a sandbox, until its runtime runs.", "driver"),
		acquireSeconds: hist("acquire_duration_seconds", "Time to acquire a sandbox from the pool; result is hit (warm) or miss (created cold).", "driver", "result"),
		destroySeconds: hist("destroy_duration_seconds", "Time to destroy a sandbox and remove all it left.", "driver"),
		warm: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("warm_sandboxes",
			"Sandboxes created ahead and waiting in the pool, by size class.")), []string{"class"}),
		misses:         counter("pool_misses_total", "Acquires the warm pool could not serve.", "driver"),
		oomKills:       counter("oom_kills_total", "Sandboxes killed for exceeding their memory limit.", "driver"),
		createFailures: counter("create_failures_total", "Sandboxes that could not be created.", "driver"),
	}
	if reg == nil {
		return m
	}
	// A second pool on the same registry shares the first one's collectors.
	register := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return are.ExistingCollector
			}
		}
		return c
	}
	m.createSeconds = register(m.createSeconds).(*prometheus.HistogramVec)
	m.acquireSeconds = register(m.acquireSeconds).(*prometheus.HistogramVec)
	m.destroySeconds = register(m.destroySeconds).(*prometheus.HistogramVec)
	m.warm = register(m.warm).(*prometheus.GaugeVec)
	m.misses = register(m.misses).(*prometheus.CounterVec)
	m.oomKills = register(m.oomKills).(*prometheus.CounterVec)
	m.createFailures = register(m.createFailures).(*prometheus.CounterVec)
	return m
}
