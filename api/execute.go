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

func (s *Server) execute(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req executeRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	spec, err := s.validateExecute(c.Request().Context(), orgOf(c), &req)
	if err != nil {
		return err
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

	var wake <-chan struct{}
	done := func() {}
	defer func() { done() }()
	runID, replay, err := s.idempotent(c, body, func() (string, error) {
		if rec.Mode == run.ModeSync {
			// Registered before the enqueue: the fastest worker cannot finish first.
			wake, done = s.waiters.Add(rec.ID)
		}
		return rec.ID, s.enqueue(c.Request().Context(), rec)
	})
	if err != nil {
		return err
	}
	if replay {
		return s.replayExecute(c, runID)
	}
	s.metrics.executes.WithLabelValues(string(rec.Mode)).Inc()
	if rec.Mode == run.ModeLegacy {
		return c.JSON(http.StatusAccepted, s.pending(rec, "Run started. Poll /agent/v1/run/"+rec.ID+"/status for progress, or GET /agent/v1/run/"+rec.ID+"/details for results."))
	}
	return s.wait(c, rec, wake)
}

// enqueue writes the run record, then its task. Neither is cut short by a
// client that goes away: an accepted run is never half made.
func (s *Server) enqueue(reqCtx context.Context, rec *run.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.Create(ctx, rec); err != nil {
		return unavailable(err)
	}
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
// the run going; its result stays readable by id.
func (s *Server) wait(c echo.Context, rec *run.Record, wake <-chan struct{}) error {
	ctx := c.Request().Context()
	timeout := time.NewTimer(s.cfg.SyncTimeout)
	defer timeout.Stop()
	for {
		// Woken by the run's end, or by the waiters' sweep that guards
		// against lost wake-ups: no Redis call while waiting.
		select {
		case <-wake:
		case <-timeout.C:
			return s.answerPending(c, rec, fmt.Sprintf("Still running after %s.", s.cfg.SyncTimeout))
		case <-s.draining:
			return s.answerPending(c, rec, "The server is restarting; the run goes on.")
		case <-ctx.Done():
			s.log.Debug("client went away; the run goes on", "run", rec.ID)
			return nil
		}
		latest, err := s.cfg.Store.Get(ctx, rec.ID)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("read run while waiting", "run", rec.ID, "err", err)
			continue
		}
		if latest.Status.Terminal() {
			return c.JSON(http.StatusOK, s.final(latest))
		}
	}
}

// answerPending answers a sync request whose run has not ended (yet): with the
// result if it ended meanwhile, else with where to poll.
func (s *Server) answerPending(c echo.Context, rec *run.Record, why string) error {
	if latest, err := s.cfg.Store.Get(context.WithoutCancel(c.Request().Context()), rec.ID); err == nil {
		rec = latest
	}
	if rec.Status.Terminal() {
		return c.JSON(http.StatusOK, s.final(rec))
	}
	return c.JSON(http.StatusAccepted, s.pending(rec, fmt.Sprintf(
		"%s Poll /agent/v1/run/%s/status for progress, or GET /agent/v1/run/%s/details for results.", why, rec.ID, rec.ID)))
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
func (s *Server) pending(rec *run.Record, message string) executeResponse {
	resp := executeResponse{
		RunID:        rec.ID,
		AgentID:      rec.AgentID,
		Status:       rec.Status,
		Provider:     rec.Provider,
		RuntimeState: string(rec.RuntimeState),
		Message:      message,
	}
	if rec.RuntimeID != "" {
		resp.RuntimeID = &rec.RuntimeID
	}
	return resp
}
