package run_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/run"
)

func newStore(t *testing.T) (*run.Store, *systemtest.Redis) {
	r := systemtest.StartRedis(t)
	return run.NewStore(run.StoreConfig{Redis: r.Client(t), Retention: time.Hour}), r
}

func newRecord() *run.Record {
	return &run.Record{
		ID: run.NewID("run"), AgentID: run.NewID("agent"), Mode: run.ModeSync,
		Status: run.StatusQueued, RuntimeState: run.RuntimePending, ReplyTo: "reply-chan",
		Spec:      run.Spec{Prompt: "p", Model: "builtin/echo", Tools: []string{"bash"}},
		CreatedAt: time.Now(),
	}
}

func TestStoreLifecycle(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	require.NoError(t, s.Create(ctx, rec))

	got, err := s.Get(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, run.StatusQueued, got.Status)
	require.Equal(t, rec.Spec, got.Spec)
	require.WithinDuration(t, rec.CreatedAt, got.CreatedAt, time.Millisecond)

	// The worker's wake-up reaches the waiting process's channel.
	sub := r.Client(t).Subscribe(ctx, "reply-chan")
	_, err = sub.Receive(ctx)
	require.NoError(t, err)

	started, err := s.Start(ctx, rec.ID, "w1")
	require.NoError(t, err)
	require.Equal(t, run.StatusRunning, started.Status)
	require.Equal(t, 1, started.Attempts)
	require.Equal(t, "w1", started.Worker)
	require.False(t, started.StartedAt.IsZero())

	require.NoError(t, s.SetRuntime(ctx, rec.ID, "linux", "sbx_1", run.RuntimeRunning))
	require.NoError(t, s.Finish(ctx, rec.ID, &run.Result{
		Status: run.StatusCompleted, RuntimeState: run.RuntimeEnded, Output: "out",
		Logs:  run.Logs{Runner: "r", Runtime: "l"},
		Usage: run.Usage{Model: "builtin/echo", InputTokens: 3, OutputTokens: 4},
		Steps: []run.Step{{ID: "step_1", Type: "output", Content: "out"}},
	}))
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, rec.ID, msg.Payload)

	done, err := s.Get(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, run.StatusCompleted, done.Status)
	require.Equal(t, "sbx_1", done.RuntimeID)
	require.Equal(t, "out", done.Output)
	require.Equal(t, 4, done.Usage.OutputTokens)
	require.Len(t, done.Steps, 1)
	require.Positive(t, done.Duration())

	// The outcome is the same record, less what a sync answer does not show.
	outcome, err := s.Outcome(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, run.Record{
		ID: rec.ID, AgentID: rec.AgentID, Status: run.StatusCompleted,
		Spec:     run.Spec{Model: "builtin/echo"},
		Provider: "linux", RuntimeID: "sbx_1", RuntimeState: run.RuntimeEnded,
		Output: "out", Logs: done.Logs, Usage: done.Usage,
	}, *outcome)

	// Terminal is final: no second result, no restart by a late retry.
	err = s.Finish(ctx, rec.ID, &run.Result{Status: run.StatusFailed, Error: "late"})
	require.ErrorIs(t, err, run.ErrTerminal)
	again, err := s.Start(ctx, rec.ID, "w2")
	require.NoError(t, err)
	require.Equal(t, run.StatusCompleted, again.Status)
	require.Equal(t, 1, again.Attempts)
	require.ErrorIs(t, s.Requeue(ctx, rec.ID), run.ErrTerminal)
}

func TestStoreRetryCountsAttempts(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	require.NoError(t, s.Create(ctx, rec))
	first, err := s.Start(ctx, rec.ID, "w1")
	require.NoError(t, err)
	require.NoError(t, s.Requeue(ctx, rec.ID))
	second, err := s.Start(ctx, rec.ID, "w2")
	require.NoError(t, err)
	require.Equal(t, 2, second.Attempts)
	require.Equal(t, "w2", second.Worker)
	require.Equal(t, first.StartedAt, second.StartedAt, "startedAt is the first attempt's")
}

func TestStoreNotFound(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	_, err := s.Get(ctx, "run_missing")
	require.ErrorIs(t, err, run.ErrNotFound)
	_, err = s.Outcome(ctx, "run_missing")
	require.ErrorIs(t, err, run.ErrNotFound)
	_, err = s.Start(ctx, "run_missing", "w")
	require.ErrorIs(t, err, run.ErrNotFound)
	require.ErrorIs(t, s.Finish(ctx, "run_missing", &run.Result{Status: run.StatusCompleted}), run.ErrNotFound)
	_, err = s.Append(ctx, "run_missing", []run.Event{{Type: "x"}})
	require.ErrorIs(t, err, run.ErrNotFound)
}

func TestEventsAreNumberedAndReplayable(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	require.NoError(t, s.Create(ctx, rec))

	seq, err := s.Append(ctx, rec.ID, []run.Event{
		{Type: "agent_start", Data: json.RawMessage(`{"a":1}`)},
		{Type: "log", Data: json.RawMessage(`{"line":"x"}`)},
	})
	require.NoError(t, err)
	require.EqualValues(t, 2, seq)
	seq, err = s.Append(ctx, rec.ID, []run.Event{{Type: "turn_end"}})
	require.NoError(t, err)
	require.EqualValues(t, 3, seq)
	// The attempt's last events come with its result, before run_end.
	require.NoError(t, s.Finish(ctx, rec.ID, &run.Result{Status: run.StatusFailed, Error: "boom",
		Events: []run.Event{{Type: "agent_end", Data: json.RawMessage(`{"error":"boom"}`)}, {Type: "log"}}}))

	all, err := s.Events(ctx, rec.ID, 0, 100)
	require.NoError(t, err)
	var types []string
	for i, e := range all {
		require.EqualValues(t, i+1, e.Seq)
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"agent_start", "log", "turn_end", "agent_end", "log", run.EventEnd}, types)
	require.JSONEq(t, `{"line":"x"}`, string(all[1].Data))
	require.JSONEq(t, `{"error":"boom"}`, string(all[3].Data))
	require.JSONEq(t, `{"status":"failed","error":"boom"}`, string(all[5].Data))

	after, err := s.Events(ctx, rec.ID, 2, 100)
	require.NoError(t, err)
	require.Len(t, after, 4)
	require.EqualValues(t, 3, after[0].Seq)
}

func TestValidID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"new id", run.NewID("run"), true},
		{"other prefix", run.NewID("agent"), false},
		{"no suffix", "run_", false},
		{"path traversal", "run_../x", false},
		{"braces", "run_{x}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, run.ValidID("run", tt.id))
		})
	}
}

// A run's sandbox is recorded with its events, unless the run has ended.
func TestAppendRuntimeRecordsTheSandbox(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	require.NoError(t, s.Create(ctx, rec))
	_, err := s.Start(ctx, rec.ID, "w1")
	require.NoError(t, err)

	seq, err := s.AppendRuntime(ctx, rec.ID, "linux", "sbx_1", []run.Event{{Type: "agent_start"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, seq)
	got, err := s.Get(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, "linux", got.Provider)
	require.Equal(t, "sbx_1", got.RuntimeID)
	require.Equal(t, run.RuntimeRunning, got.RuntimeState)

	// A short run's sandbox comes with its result.
	short := newRecord()
	require.NoError(t, s.Create(ctx, short))
	_, err = s.Start(ctx, short.ID, "w1")
	require.NoError(t, err)
	require.NoError(t, s.Finish(ctx, short.ID, &run.Result{Status: run.StatusCompleted, RuntimeState: run.RuntimeEnded,
		Provider: "linux", RuntimeID: "sbx_2", Events: []run.Event{{Type: "agent_start"}}}))
	got, err = s.Get(ctx, short.ID)
	require.NoError(t, err)
	require.Equal(t, "sbx_2", got.RuntimeID)
	require.Equal(t, run.RuntimeEnded, got.RuntimeState)

	// An ended run keeps its record as it ended; the events still go in.
	_, err = s.AppendRuntime(ctx, short.ID, "linux", "sbx_3", []run.Event{{Type: "log"}})
	require.NoError(t, err)
	got, err = s.Get(ctx, short.ID)
	require.NoError(t, err)
	require.Equal(t, "sbx_2", got.RuntimeID)
	require.Equal(t, run.RuntimeEnded, got.RuntimeState)
}
