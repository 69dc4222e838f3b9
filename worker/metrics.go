package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/run"
)

type metrics struct {
	runs         *prometheus.CounterVec
	failures     *prometheus.CounterVec
	runDuration  *prometheus.HistogramVec
	queueWait    prometheus.Histogram
	inFlight     prometheus.Gauge
	concurrency  prometheus.Gauge
	toolCalls    *prometheus.CounterVec
	toolDuration *prometheus.HistogramVec
}

// runBuckets span a builtin run (milliseconds) to the 30-minute deadline.
var runBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}

// toolBuckets span a file read (a millisecond) to a long bash command.
var toolBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Reasons a run fails, the reason label of oneshot_worker_run_failures_total.
const (
	reasonTimeout  = "timeout"  // the run deadline passed
	reasonOOM      = "oom"      // the sandbox exceeded its memory limit
	reasonSandbox  = "sandbox"  // no sandbox could be created
	reasonProtocol = "protocol" // the runtime broke the protocol
	reasonBudget   = "budget"   // the worker stopped the run at its turn or token budget
	reasonRuntime  = "runtime"  // the runtime exited without a result
	reasonAgent    = "agent"    // the runtime reported an error (a model error, its own limits)
)

var failureReasons = []string{reasonTimeout, reasonOOM, reasonSandbox, reasonProtocol, reasonBudget, reasonRuntime, reasonAgent}

// toolOther is the tool label of calls to names outside the catalog, so a
// model that invents tool names cannot grow the label set.
const toolOther = "other"

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "runs_total",
			Help: "Runs ended by this worker, by mode and terminal status.",
		}, []string{"mode", "status"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "run_failures_total",
			Help: "Failed runs, by reason: timeout, oom, sandbox, protocol, budget, runtime, agent.",
		}, []string{"reason"}),
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
		concurrency: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "concurrency",
			Help: "Runs this worker runs at once at most (ONESHOT_WORKER_CONCURRENCY).",
		}),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "tool_calls_total",
			Help: "Tool calls of the agents this worker runs, sandbox and service tools, by tool and result (ok, error).",
		}, []string{"tool", "result"}),
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "oneshot", Subsystem: "worker", Name: "tool_duration_seconds",
			Help: "Time of the agents' tool calls, as the runtime measured them, by tool.", Buckets: toolBuckets,
		}, []string{"tool"}),
	}
	// Series with known labels start at zero, so rates and alerts see them
	// before the first event.
	for _, mode := range []run.Mode{run.ModeSync, run.ModeLegacy, run.ModeRun} {
		for _, status := range []run.Status{run.StatusCompleted, run.StatusFailed, run.StatusCancelled} {
			m.runs.WithLabelValues(string(mode), string(status))
		}
	}
	for _, r := range failureReasons {
		m.failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.failures, m.runDuration, m.queueWait, m.inFlight, m.concurrency, m.toolCalls, m.toolDuration)
	}
	return m
}

// toolCall counts one tool call the runtime reported in a tool_execution_end
// event. Names outside the catalog count as "other".
func (m *metrics) toolCall(name string, isError bool, durationMs int64) {
	if _, ok := agent.LookupTool(name); !ok {
		name = toolOther
	}
	result := "ok"
	if isError {
		result = "error"
	}
	m.toolCalls.WithLabelValues(name, result).Inc()
	m.toolDuration.WithLabelValues(name).Observe(float64(max(durationMs, 0)) / 1000)
}
