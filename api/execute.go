package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
)

// executeResponse is the answer of POST /agent/v1/execute, in the reference's
// shape: the final result (sync) or where to poll (legacy, or sync timeout).
type executeResponse struct {
	RunID        string         `json:"runId"`
	AgentID      string         `json:"agentId"`
	Status       run.Status     `json:"status"`
	Provider     string         `json:"provider"`
	RuntimeID    *string        `json:"runtimeId,omitempty"`
	RuntimeState string         `json:"runtimeState"`
	Output       *string        `json:"output,omitempty"`
	Error        *string        `json:"error"`
	Logs         *executeLogs   `json:"logs,omitempty"`
	Usage        *responseUsage `json:"usage,omitempty"`
	Message      string         `json:"message,omitempty"`
}

// executeLogs keeps the reference's field names: linc is the runtime's log.
type executeLogs struct {
	Runner string `json:"runner"`
	Linc   string `json:"linc"`
}

type responseUsage struct {
	Model        string `json:"model"`
	InputTokens  int    `json:"inputTokens"`
	OutputTokens int    `json:"outputTokens"`
	ToolCalls    int    `json:"toolCalls"`
	DurationMs   int64  `json:"durationMs"`
}

// syncWait is what a sync request keeps while it waits for its run. Kept
// small, as thousands of them may wait at once: of the run's record, only
// what the 202 answer needs if the run does not end in time.
type syncWait struct {
	rec  *run.Record // the fields pending needs, as the wait began
	wake <-chan struct{}
	done func() // ends the registration with the waiters
}

func newSyncWait(rec *run.Record, wake <-chan struct{}, done func()) *syncWait {
	head := &run.Record{ID: rec.ID, AgentID: rec.AgentID, Provider: rec.Provider, RuntimeID: rec.RuntimeID,
		Status: rec.Status, RuntimeState: rec.RuntimeState}
	return &syncWait{rec: head, wake: wake, done: done}
}

// execute makes the run and, for a sync request, waits for it. The work
// before and after the wait is offloaded, so that the goroutine that waits
// keeps a small stack.
func (s *Server) execute(c echo.Context) error {
	var w *syncWait
	err := s.offload(c.Request().Context(), func() (err error) {
		w, err = s.startExecute(c)
		return err
	})
	if err != nil || w == nil {
		return err
	}
	return s.wait(c, w)
}

// startExecute checks and makes the run. It answers a legacy request, an
// error or a replay of an ended run itself (nil syncWait); else it returns
// the registered wait for the run.
func (s *Server) startExecute(c echo.Context) (*syncWait, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	var req executeRequest
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	spec, err := s.validateExecute(c.Request().Context(), orgOf(c), &req)
	if err != nil {
		return nil, err
	}
	rec := &run.Record{
		ID:           run.NewID("run"),
		AgentID:      cmp.Or(req.AgentID, run.NewID("agent")),
		Org:          orgOf(c),
		Mode:         run.ModeSync,
		Status:       run.StatusQueued,
		RuntimeState: run.RuntimePending,
		Provider:     s.cfg.Provider,
		Spec:         spec,
		CreatedAt:    time.Now(),
	}
	if req.AgentRuntime {
		rec.Mode = run.ModeLegacy
	} else {
		rec.ReplyTo = s.waiters.Channel()
	}

	var w *syncWait
	handed := false
	defer func() {
		// An error, or a panic, after the waiter was registered.
		if w != nil && !handed {
			w.done()
		}
	}()
	runID, replay, err := s.idempotent(c, body, func() (string, error) {
		return rec.ID, s.enqueue(c.Request().Context(), rec, func() {
			if rec.Mode == run.ModeSync {
				wake, done := s.waiters.Add(rec.ID)
				w = newSyncWait(rec, wake, done)
			}
		})
	})
	if err != nil {
		return nil, err
	}
	if replay {
		return s.replayExecute(c, runID)
	}
	s.metrics.executes.WithLabelValues(string(rec.Mode)).Inc()
	if rec.Mode == run.ModeLegacy {
		return nil, c.JSON(http.StatusAccepted, s.pending(rec, "Run started."))
	}
	handed = true
	return w, nil
}

// enqueue writes the run record, then its task. Neither is cut short by a
// client that goes away: an accepted run is never half made. created is
// called between the two: a sync request registers its waiter there, after
// the record (the waiters' sweep takes a missing record for an ended run)
// and before the task (the fastest worker cannot finish first).
func (s *Server) enqueue(reqCtx context.Context, rec *run.Record, created func()) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.Create(ctx, rec); err != nil {
		return unavailable(err)
	}
	created()
	task, err := tasks.NewExecuteTask(rec.ID, tasks.ExecuteOptions{
		Timeout:   s.cfg.RunDeadline + 5*time.Minute,
		Retention: s.cfg.TaskRetention,
	})
	if err == nil {
		_, err = s.client.EnqueueContext(ctx, task)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// The record exists but no worker will ever see it: say so in it.
		ferr := s.cfg.Store.Finish(ctx, rec.ID, &run.Result{Status: run.StatusFailed, RuntimeState: run.RuntimeError,
			Error: "the run could not be queued: " + err.Error()})
		if ferr != nil {
			s.log.Error("record a run that could not be queued", "run", rec.ID, "err", ferr)
		}
		return unavailable(fmt.Errorf("enqueue: %w", err))
	}
	return nil
}

// wait answers a sync execute: the result when the run ends, or the legacy
// shape if it is still going after SyncTimeout. A client that goes away leaves
// the run going; its result stays readable by id. The wait is a select in a
// small frame; reading Redis and writing the answer are offloaded.
func (s *Server) wait(c echo.Context, w *syncWait) error {
	defer w.done()
	ctx := c.Request().Context()
	timeout := time.NewTimer(s.cfg.SyncTimeout)
	defer timeout.Stop()
	for {
		// Woken by the run's end, or by the waiters' sweep that guards
		// against lost wake-ups: no Redis call while waiting.
		select {
		case <-w.wake:
		case <-timeout.C:
			return s.answerLate(c, w, "Still running after "+s.cfg.SyncTimeout.String()+".")
		case <-s.draining:
			return s.answerLate(c, w, "The server is restarting; the run goes on.")
		case <-ctx.Done():
			s.log.Debug("client went away; the run goes on", "run", w.rec.ID)
			return nil
		}
		var over bool
		err := s.offload(ctx, func() (err error) {
			over, err = s.answerIfEnded(c, w.rec.ID)
			return err
		})
		if errors.Is(err, errClientGone) {
			return nil
		}
		if over || err != nil {
			return err
		}
	}
}

// answerLate answers a sync request that stops waiting (timeout, restart)
// before it heard of its run's end: answerPending, offloaded.
func (s *Server) answerLate(c echo.Context, w *syncWait, why string) error {
	err := s.offload(c.Request().Context(), func() error { return s.answerPending(c, w.rec, why) })
	if errors.Is(err, errClientGone) {
		return nil
	}
	return err
}

// answerIfEnded answers with the run's result if it has ended. over reports
// whether the request is over: answered, or its client gone.
func (s *Server) answerIfEnded(c echo.Context, runID string) (over bool, err error) {
	ctx := c.Request().Context()
	latest, err := s.cfg.Store.Outcome(ctx, runID)
	if err != nil {
		if ctx.Err() != nil {
			return true, nil
		}
		s.log.Warn("read run while waiting", "run", runID, "err", err)
		return false, nil
	}
	if !latest.Status.Terminal() {
		return false, nil
	}
	return true, c.JSON(http.StatusOK, s.final(latest))
}

// answerPending answers a sync request whose run has not ended (yet): with the
// result if it ended meanwhile, else with where to poll.
func (s *Server) answerPending(c echo.Context, rec *run.Record, why string) error {
	if latest, err := s.cfg.Store.Outcome(context.WithoutCancel(c.Request().Context()), rec.ID); err == nil {
		rec = latest
	}
	if rec.Status.Terminal() {
		return c.JSON(http.StatusOK, s.final(rec))
	}
	return c.JSON(http.StatusAccepted, s.pending(rec, why))
}

// final is the sync answer for a run that has ended.
func (s *Server) final(rec *run.Record) executeResponse {
	resp := executeResponse{
		RunID:        rec.ID,
		AgentID:      rec.AgentID,
		Status:       rec.Status,
		Provider:     rec.Provider,
		RuntimeID:    &rec.RuntimeID,
		RuntimeState: string(rec.RuntimeState),
		Output:       &rec.Output,
		Logs:         &executeLogs{Runner: rec.Logs.Runner, Linc: rec.Logs.Runtime},
	}
	if rec.Error != "" {
		resp.Error = &rec.Error
	}
	if rec.Usage != nil {
		resp.Usage = &responseUsage{Model: rec.Usage.Model, InputTokens: rec.Usage.InputTokens, OutputTokens: rec.Usage.OutputTokens,
			ToolCalls: rec.Usage.ToolCalls, DurationMs: rec.Usage.DurationMs}
	} else {
		resp.Usage = &responseUsage{Model: rec.Spec.Model}
	}
	return resp
}

// pending is the answer for a run that has not ended: where to poll.
func (s *Server) pending(rec *run.Record, why string) executeResponse {
	resp := executeResponse{
		RunID:        rec.ID,
		AgentID:      rec.AgentID,
		Status:       rec.Status,
		Provider:     rec.Provider,
		RuntimeState: string(rec.RuntimeState),
		Message: fmt.Sprintf("%s Poll /agent/v1/run/%s/status for progress, or GET /agent/v1/run/%s/details for results.",
			why, rec.ID, rec.ID),
	}
	if rec.RuntimeID != "" {
		resp.RuntimeID = &rec.RuntimeID
	}
	return resp
}
