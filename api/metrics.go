package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	executes *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, w *Waiters, working chan struct{}) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "oneshot", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route and method (sync executes include the run).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		executes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Subsystem: "api", Name: "executes_total",
			Help: "Execute requests accepted, by mode (sync, legacy).",
		}, []string{"mode"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.executes, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "oneshot", Subsystem: "api", Name: "sync_waiters",
			Help: "Sync execute requests waiting for their run.",
		}, func() float64 { return float64(w.Len()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "oneshot", Subsystem: "api", Name: "working_requests",
			Help: "Requests reading their body, calling Redis or writing their answer now; at oneshot_api_working_limit, others wait their turn.",
		}, func() float64 { return float64(len(working)) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "oneshot", Subsystem: "api", Name: "working_limit",
			Help: "The most requests that do such work at once (api.Config.MaxWorking).",
		}, func() float64 { return float64(cap(working)) }))
	}
	return m
}

// middleware counts and times every request by its route pattern (never by
// raw path, which would put run ids in labels).
func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		code := c.Response().Status
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(code)).Inc()
		m.latency.WithLabelValues(route, c.Request().Method).Observe(time.Since(start).Seconds())
		return nil
	}
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
