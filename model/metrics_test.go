package model

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	ctx := context.Background()

	echo := Instrument(Builtin{}, m)
	require.Equal(t, BuiltinProvider, echo.Name())
	_, err := echo.Complete(ctx, Request{Model: BuiltinEcho, Messages: []Message{{Role: RoleUser, Content: []Part{{Type: PartText, Text: "12345678"}}}}}, Hooks{})
	require.NoError(t, err)

	srv := newFakeServer(t, reply(529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`), replyFixture(t, "anthropic/hello.sse"))
	var retried int
	anthropic := Instrument(newTestAnthropic(srv.URL, true), m)
	_, err = anthropic.Complete(ctx, Request{Model: DefaultModel}, Hooks{RetryFunc: func(Retry) { retried++ }})
	require.NoError(t, err)
	require.Equal(t, 1, retried, "the caller's RetryFunc still runs")

	srv = newFakeServer(t, reply(401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`))
	_, err = Instrument(newTestAnthropic(srv.URL, true), m).Complete(ctx, Request{Model: DefaultModel}, Hooks{})
	require.Error(t, err)

	want := fmt.Sprintf(`
# HELP oneshot_model_calls_total Model calls, by outcome (ok or error).
# TYPE oneshot_model_calls_total counter
oneshot_model_calls_total{model="anthropic/claude-sonnet-4.6",outcome="error",provider="anthropic"} 1
oneshot_model_calls_total{model="anthropic/claude-sonnet-4.6",outcome="ok",provider="anthropic"} 1
oneshot_model_calls_total{model="builtin/echo",outcome="ok",provider="builtin"} 1
# HELP oneshot_model_errors_total Failed model calls, by kind of failure.
# TYPE oneshot_model_errors_total counter
oneshot_model_errors_total{kind="rejected",model="anthropic/claude-sonnet-4.6",provider="anthropic"} 1
# HELP oneshot_model_retries_total Retries of model calls (429, 5xx, overload, connection errors).
# TYPE oneshot_model_retries_total counter
oneshot_model_retries_total{model="anthropic/claude-sonnet-4.6",provider="anthropic"} 1
# HELP oneshot_model_tokens_total Tokens of model calls, by direction (input or output).
# TYPE oneshot_model_tokens_total counter
oneshot_model_tokens_total{direction="input",model="anthropic/claude-sonnet-4.6",provider="anthropic"} 25
oneshot_model_tokens_total{direction="input",model="builtin/echo",provider="builtin"} %d
oneshot_model_tokens_total{direction="output",model="anthropic/claude-sonnet-4.6",provider="anthropic"} 15
oneshot_model_tokens_total{direction="output",model="builtin/echo",provider="builtin"} 2
`, 4+2)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"oneshot_model_calls_total", "oneshot_model_errors_total", "oneshot_model_retries_total", "oneshot_model_tokens_total"))
	require.Equal(t, 2, testutil.CollectAndCount(m.duration), "one duration series per provider and model")
	require.Equal(t, Provider(Builtin{}), Instrument(Builtin{}, nil), "no metrics, no wrapper")
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "canceled", err: fmt.Errorf("anthropic: %w", context.Canceled), want: "canceled"},
		{name: "deadline", err: context.DeadlineExceeded, want: "timeout"},
		{name: "429", err: &APIError{Status: 429}, want: "rate_limited"},
		{name: "529", err: fmt.Errorf("x: %w", &APIError{Status: 529}), want: "overloaded"},
		{name: "500", err: &APIError{Status: 500}, want: "server"},
		{name: "400", err: &APIError{Status: 400}, want: "rejected"},
		{name: "stream overload", err: &APIError{Type: "overloaded_error"}, want: "overloaded"},
		{name: "stream error", err: &APIError{Type: "invalid_request_error"}, want: "provider_error"},
		{name: "interrupted", err: fmt.Errorf("a: %w", ErrStreamInterrupted), want: "interrupted"},
		{name: "malformed", err: ErrMalformedResponse, want: "malformed"},
		{name: "other", err: errors.New("boom"), want: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, ErrorKind(tt.err)) })
	}
}
