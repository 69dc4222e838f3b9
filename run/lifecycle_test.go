package run_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/run"
)

func TestCancelIsAtomicAndFinal(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	rec.Callbacks = []string{"https://a.example/hook"}
	require.NoError(t, s.Create(ctx, rec))
	_, err := s.Start(ctx, rec.ID, "w1")
	require.NoError(t, err)

	// Everyone the cancel concerns hears it: the waiting API process, the
	// workers, the event streams.
	sub := r.Client(t).Subscribe(ctx, "reply-chan", s.CancelChannel(), s.EventsChannel(rec.ID))
	_, err = sub.Receive(ctx)
	require.NoError(t, err)

	out, err := s.Cancel(ctx, rec.ID)
	require.NoError(t, err)
	require.True(t, out.Now)
	require.Equal(t, run.StatusRunning, out.Status)
	require.Equal(t, []string{"https://a.example/hook"}, out.Callbacks)
	heard := map[string]string{}
	for range 3 {
		msg, err := sub.ReceiveMessage(ctx)
		require.NoError(t, err)
		heard[msg.Channel] = msg.Payload
	}
	require.Equal(t, map[string]string{"reply-chan": rec.ID, s.CancelChannel(): rec.ID, s.EventsChannel(rec.ID): "1"}, heard)

	got, err := s.Get(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, run.StatusCancelled, got.Status)
	require.Equal(t, run.RuntimeEnded, got.RuntimeState)
	require.Equal(t, run.CancelError, got.Error)
	require.False(t, got.CompletedAt.IsZero())
	events, err := s.Events(ctx, rec.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, run.EventEnd, events[0].Type)
	require.JSONEq(t, `{"status":"cancelled","error":"the run was cancelled"}`, string(events[0].Data))

	// Idempotent, and final: no result, no restart, no second cancel.
	again, err := s.Cancel(ctx, rec.ID)
	require.NoError(t, err)
	require.False(t, again.Now)
	require.Equal(t, run.StatusCancelled, again.Status)
	require.ErrorIs(t, s.Finish(ctx, rec.ID, &run.Result{Status: run.StatusCompleted}), run.ErrTerminal)
	restarted, err := s.Start(ctx, rec.ID, "w2")
	require.NoError(t, err)
	require.Equal(t, run.StatusCancelled, restarted.Status)
	require.Equal(t, 1, restarted.Attempts)

	// The stopped attempt's logs and usage are kept, once; the status stays.
	require.NoError(t, s.SaveCancelled(ctx, rec.ID, &run.Result{Status: run.StatusCancelled, Logs: run.Logs{Runner: "r"}, Usage: run.Usage{InputTokens: 5}}))
	require.NoError(t, s.SaveCancelled(ctx, rec.ID, &run.Result{Status: run.StatusCancelled, Logs: run.Logs{Runner: "second"}}))
	got, err = s.Get(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, run.StatusCancelled, got.Status)
	require.Equal(t, "r", got.Logs.Runner)
	require.Equal(t, 5, got.Usage.InputTokens)

	_, err = s.Cancel(ctx, "run_missing")
	require.ErrorIs(t, err, run.ErrNotFound)

	// A finished run is not cancelled.
	done := newRecord()
	require.NoError(t, s.Create(ctx, done))
	require.NoError(t, s.Finish(ctx, done.ID, &run.Result{Status: run.StatusCompleted, RuntimeState: run.RuntimeEnded}))
	out, err = s.Cancel(ctx, done.ID)
	require.NoError(t, err)
	require.False(t, out.Now)
	require.Equal(t, run.StatusCompleted, out.Status)
}

func TestExecOnce(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	rec.Mode = run.ModeRun
	require.NoError(t, s.Create(ctx, rec))

	require.NoError(t, s.Exec(ctx, rec.ID))
	err := s.Exec(ctx, rec.ID)
	require.ErrorIs(t, err, run.ErrNotQueued)
	require.Equal(t, &run.NotQueuedError{Status: run.StatusQueued, Requested: true}, err)

	// Undone (the task could not be queued), exec works again.
	require.NoError(t, s.Unexec(ctx, rec.ID))
	require.NoError(t, s.Exec(ctx, rec.ID))

	_, err = s.Start(ctx, rec.ID, "w")
	require.NoError(t, err)
	require.Equal(t, &run.NotQueuedError{Status: run.StatusRunning}, s.Exec(ctx, rec.ID))
	require.ErrorIs(t, s.Exec(ctx, "run_missing"), run.ErrNotFound)

	// An execute is queued as it is made: exec refuses it.
	ex := newRecord()
	require.NoError(t, s.Create(ctx, ex))
	require.ErrorIs(t, s.Exec(ctx, ex.ID), run.ErrNotQueued)
}

func TestWatchAndFinishCallbacks(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	rec := newRecord()
	rec.Callbacks = []string{"https://a.example/1"}
	require.NoError(t, s.Create(ctx, rec))

	st, added, err := s.Watch(ctx, rec.ID, "https://a.example/2")
	require.NoError(t, err)
	require.True(t, added)
	require.Equal(t, run.StatusQueued, st)
	_, added, err = s.Watch(ctx, rec.ID, "https://a.example/2")
	require.NoError(t, err)
	require.False(t, added, "the same URL once")
	for i := 3; i <= run.MaxCallbacks; i++ {
		_, _, err = s.Watch(ctx, rec.ID, fmt.Sprintf("https://a.example/%d", i))
		require.NoError(t, err)
	}
	_, _, err = s.Watch(ctx, rec.ID, "https://a.example/one-too-many")
	require.ErrorIs(t, err, run.ErrTooManyCallbacks)
	_, _, err = s.Watch(ctx, rec.ID, "https://a.example/\nx")
	require.Error(t, err)
	_, _, err = s.Watch(ctx, "run_missing", "https://a.example/")
	require.ErrorIs(t, err, run.ErrNotFound)

	urls, err := s.FinishCallbacks(ctx, rec.ID, &run.Result{Status: run.StatusCompleted, RuntimeState: run.RuntimeEnded})
	require.NoError(t, err)
	require.Len(t, urls, run.MaxCallbacks)
	require.Equal(t, "https://a.example/1", urls[0])
	got, err := s.Get(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, urls, got.Callbacks)

	st, err = s.Status(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, run.StatusCompleted, st)
	_, err = s.Status(ctx, "run_missing")
	require.ErrorIs(t, err, run.ErrNotFound)
}

func TestListPagesFiltersAndForgetsExpiredRuns(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	base := time.Now().Add(-time.Minute)
	var ids []string // oldest first
	for i := range 7 {
		rec := newRecord()
		rec.Org = "acme"
		rec.Spec.Ephemeral = i%2 == 1 // odd ones are executes
		if !rec.Spec.Ephemeral {
			rec.AgentID = "agent_persistent"
		}
		rec.Spec.Prompt = fmt.Sprintf("prompt %d", i)
		rec.CreatedAt = base.Add(time.Duration(i) * time.Second)
		require.NoError(t, s.Create(ctx, rec))
		ids = append(ids, rec.ID)
	}
	other := newRecord()
	other.Org = "globex"
	require.NoError(t, s.Create(ctx, other))
	require.NoError(t, s.Finish(ctx, ids[5], &run.Result{Status: run.StatusCompleted}))
	require.NoError(t, s.Finish(ctx, ids[2], &run.Result{Status: run.StatusCompleted}))

	list := func(q run.ListQuery) (got []string, page *run.Page) {
		t.Helper()
		page, err := s.List(ctx, q)
		require.NoError(t, err)
		for _, r := range page.Runs {
			got = append(got, r.ID)
		}
		return got, page
	}
	got, page := list(run.ListQuery{Org: "acme", Limit: 3})
	require.Equal(t, []string{ids[6], ids[5], ids[4]}, got)
	require.True(t, page.HasMore)
	require.Equal(t, ids[4], page.Next)
	require.Equal(t, "prompt 6", page.Runs[0].Prompt)
	got, page = list(run.ListQuery{Org: "acme", Limit: 3, Cursor: page.Next})
	require.Equal(t, []string{ids[3], ids[2], ids[1]}, got)
	require.True(t, page.HasMore)
	got, page = list(run.ListQuery{Org: "acme", Limit: 3, Cursor: page.Next})
	require.Equal(t, []string{ids[0]}, got)
	require.False(t, page.HasMore)

	got, _ = list(run.ListQuery{Org: "acme", Limit: 10, Status: run.StatusCompleted})
	require.Equal(t, []string{ids[5], ids[2]}, got)
	got, _ = list(run.ListQuery{Org: "acme", Limit: 10, AgentID: "agent_persistent"})
	require.Equal(t, []string{ids[6], ids[4], ids[2], ids[0]}, got, "executes are not in an agent's listing")
	got, _ = list(run.ListQuery{Org: "globex", Limit: 10})
	require.Equal(t, []string{other.ID}, got)

	_, err := s.List(ctx, run.ListQuery{Org: "globex", Limit: 10, Cursor: ids[3]})
	require.ErrorIs(t, err, run.ErrBadCursor, "another organization's run is no cursor")

	// A run whose record expired leaves the listing, and its index entry goes.
	require.NoError(t, r.Client(t).Del(ctx, "oneshot:run:{"+ids[4]+"}").Err())
	got, _ = list(run.ListQuery{Org: "acme", Limit: 3})
	require.Equal(t, []string{ids[6], ids[5], ids[3]}, got)
	n, err := r.Client(t).ZCard(ctx, "oneshot:runs:org:acme").Result()
	require.NoError(t, err)
	require.EqualValues(t, 6, n)

	// Entries older than twice the retention are trimmed as runs are made.
	old := newRecord()
	old.Org = "acme"
	old.CreatedAt = time.Now().Add(-3 * time.Hour)
	require.NoError(t, s.Create(ctx, old))
	_, err = r.Client(t).ZScore(ctx, "oneshot:runs:org:acme", old.ID).Result()
	require.ErrorIs(t, err, redis.Nil)

	// The indexes expire with the records.
	ttl, err := r.Client(t).PTTL(ctx, "oneshot:runs:org:acme").Result()
	require.NoError(t, err)
	require.InDelta(t, (2 * time.Hour).Seconds(), ttl.Seconds(), 60)
}
