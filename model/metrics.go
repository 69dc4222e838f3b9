package model

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts model calls by provider and model id. Labels never hold run
// ids; the model label is the requested id, so it grows with the ids used.
type Metrics struct {
	calls    *prometheus.CounterVec   // provider, model, outcome (ok|error)
	errors   *prometheus.CounterVec   // provider, model, kind
	retries  *prometheus.CounterVec   // provider, model
	tokens   *prometheus.CounterVec   // provider, model, direction (input|output)
	duration *prometheus.HistogramVec // provider, model
}

// NewMetrics creates the model metrics and registers them with reg; a nil
// reg registers nothing.
//
//	oneshot_model_calls_total{provider,model,outcome}
//	oneshot_model_errors_total{provider,model,kind}
//	oneshot_model_retries_total{provider,model}
//	oneshot_model_tokens_total{provider,model,direction}
//	oneshot_model_call_duration_seconds{provider,model}
func NewMetrics(reg prometheus.Registerer) *Metrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "oneshot", Subsystem: "model", Name: name, Help: help}
	}
	m := &Metrics{
		calls:   prometheus.NewCounterVec(opts("calls_total", "Model calls, by outcome (ok or error)."), []string{"provider", "model", "outcome"}),
		errors:  prometheus.NewCounterVec(opts("errors_total", "Failed model calls, by kind of failure."), []string{"provider", "model", "kind"}),
		retries: prometheus.NewCounterVec(opts("retries_total", "Retries of model calls (429, 5xx, overload, connection errors)."), []string{"provider", "model"}),
		tokens:  prometheus.NewCounterVec(opts("tokens_total", "Tokens of model calls, by direction (input or output)."), []string{"provider", "model", "direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "oneshot", Subsystem: "model", Name: "call_duration_seconds",
			Help:    "Duration of model calls, retries and streaming included.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320},
		}, []string{"provider", "model"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.errors, m.retries, m.tokens, m.duration)
	}
	return m
}

// Instrument returns p counting its calls in m; a nil m returns p as is.
func Instrument(p Provider, m *Metrics) Provider {
	if m == nil {
		return p
	}
	return &instrumented{p: p, m: m}
}

type instrumented struct {
	p Provider
	m *Metrics
}

func (i *instrumented) Name() string { return i.p.Name() }

func (i *instrumented) Complete(ctx context.Context, req Request, hooks Hooks) (*Response, error) {
	provider, model := i.p.Name(), req.Model
	retry := hooks.RetryFunc
	hooks.RetryFunc = func(r Retry) {
		i.m.retries.WithLabelValues(provider, model).Inc()
		if retry != nil {
			retry(r)
		}
	}
	start := time.Now()
	resp, err := i.p.Complete(ctx, req, hooks)
	i.m.duration.WithLabelValues(provider, model).Observe(time.Since(start).Seconds())
	if err != nil {
		i.m.calls.WithLabelValues(provider, model, "error").Inc()
		i.m.errors.WithLabelValues(provider, model, ErrorKind(err)).Inc()
		return nil, err
	}
	i.m.calls.WithLabelValues(provider, model, "ok").Inc()
	i.m.tokens.WithLabelValues(provider, model, "input").Add(float64(resp.Usage.InputTokens))
	i.m.tokens.WithLabelValues(provider, model, "output").Add(float64(resp.Usage.OutputTokens))
	return resp, nil
}

// ErrorKind sorts a call's error into a few kinds, for metrics and logs:
// canceled, timeout, rate_limited (429), overloaded (529, 503),
// server (other 5xx), rejected (other 4xx, e.g. a bad key or request),
// provider_error (an error event in a stream), interrupted, malformed,
// network, other.
func ErrorKind(err error) string {
	var apiErr *APIError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &apiErr):
		switch s := apiErr.Status; {
		case s == 429:
			return "rate_limited"
		case s == 529 || s == 503 || apiErr.Type == "overloaded_error":
			return "overloaded"
		case s >= 500:
			return "server"
		case s >= 400:
			return "rejected"
		}
		return "provider_error"
	case errors.Is(err, ErrStreamInterrupted):
		return "interrupted"
	case errors.Is(err, ErrMalformedResponse):
		return "malformed"
	case errors.As(err, &netErr):
		return "network"
	}
	return "other"
}
