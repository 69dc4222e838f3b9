package service

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Name: "tool_calls_total",
			Help: "Service-tool calls run on the host, by tool and result (ok, refused, error).",
		}, []string{"tool", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "oneshot", Name: "tool_call_duration_seconds",
			Help:    "Time of service-tool calls run on the host, backend calls included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"tool"}),
	}
	if reg != nil {
		m.calls = register(reg, m.calls)
		m.duration = register(reg, m.duration)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second Registry on the same registerer shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func (m *metrics) observe(tool, result string, d time.Duration) {
	m.calls.WithLabelValues(tool, result).Inc()
	m.duration.WithLabelValues(tool).Observe(d.Seconds())
}
