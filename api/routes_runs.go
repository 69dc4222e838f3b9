package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
	"github.com/oneshot-dev/oneshot/webhook"
)

// runRoutes adds the run lifecycle routes beyond execute, status and details:
// create a run of a persistent agent, execute it, list, follow, cancel and
// watch runs. Every route answers only runs of the caller's organization.
func (s *Server) runRoutes(e *echo.Echo) {
	limit := middleware.BodyLimit(s.cfg.BodyLimit)
	e.POST("/agent/v1/run", s.createRun, limit)
	e.GET("/agent/v1/run", s.listRuns)
	e.POST("/agent/v1/run/:id/exec", s.execRun)
	e.POST("/agent/v1/run/:id/cancel", s.cancelRun)
	e.POST("/agent/v1/run/:id/watch", s.watchRun, limit)
	e.GET("/agent/v1/run/:id/events", s.runEvents)
}

// runRequest is the body of POST /agent/v1/run.
type runRequest struct {
	AgentID     *string  `json:"agentId"`
	Prompt      *string  `json:"prompt"`
	Guidance    string   `json:"guidance"`
	Model       string   `json:"model"`
	ObjectIDs   []string `json:"objectIds"`
	CallbackURL *string  `json:"callbackUrl"`
}

type runCreated struct {
	ID        string     `json:"id"`
	AgentID   string     `json:"agentId"`
	CreatedAt time.Time  `json:"createdAt"`
	ObjectIDs []string   `json:"objectIds"`
	Status    run.Status `json:"status"`
}

func createdOf(rec *run.Record) runCreated {
	ids := rec.Spec.ObjectIDs
	if ids == nil {
		ids = []string{}
	}
	return runCreated{ID: rec.ID, AgentID: rec.AgentID, CreatedAt: rec.CreatedAt, ObjectIDs: ids, Status: rec.Status}
}

// createRun makes a queued run of a persistent agent; nothing runs until
// exec. A callbackUrl is stored with the run, in the same write.
func (s *Server) createRun(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req runRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	switch {
	case req.AgentID == nil || strings.TrimSpace(*req.AgentID) == "":
		return invalid("agentId", "missing_field", "field agentId is required: the id of the persistent agent to run (POST /agent/v1/agents makes one)")
	case req.Prompt == nil:
		return invalid("prompt", "missing_field", "field prompt is required: the task to run, as a string")
	case strings.TrimSpace(*req.Prompt) == "":
		return invalid("prompt", "empty_field", "field prompt is empty: give the task to run")
	}
	if err := checkIDs("objectIds", req.ObjectIDs); err != nil {
		return err
	}
	var callbacks []string
	if req.CallbackURL != nil {
		if err := s.checkCallback(ctx, *req.CallbackURL); err != nil {
			return err
		}
		callbacks = []string{*req.CallbackURL}
	}
	spec, err := s.RunSpec(ctx, orgOf(c), *req.AgentID)
	if err != nil {
		return err
	}
	if m := strings.TrimSpace(req.Model); m != "" {
		if err := s.checkModel(m); err != nil {
			return err
		}
		spec.Model = m
	}
	spec.Prompt, spec.Guidance, spec.ObjectIDs, spec.Ephemeral = *req.Prompt, req.Guidance, req.ObjectIDs, false
	rec := &run.Record{
		ID:           run.NewID("run"),
		AgentID:      *req.AgentID,
		Org:          orgOf(c),
		Mode:         run.ModeRun,
		Status:       run.StatusQueued,
		RuntimeState: run.RuntimePending,
		Provider:     s.cfg.Provider,
		Spec:         spec,
		Callbacks:    callbacks,
		CreatedAt:    time.Now().UTC(),
	}
	runID, replay, err := s.idempotent(c, body, func() (string, error) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.cfg.Store.Create(wctx, rec); err != nil {
			return "", unavailable(err)
		}
		return rec.ID, nil
	})
	if err != nil {
		return err
	}
	if replay {
		c.Response().Header().Set("Idempotent-Replayed", "true")
		first, err := s.cfg.Store.Get(ctx, runID)
		if err != nil {
			return unavailable(err)
		}
		return c.JSON(http.StatusOK, createdOf(first))
	}
	s.notifier.Notify(ctx, webhook.RunCreated, rec, rec.Callbacks)
	return c.JSON(http.StatusCreated, createdOf(rec))
}

type execResponse struct {
	ID         string     `json:"id"`
	Status     run.Status `json:"status"`
	WorkflowID string     `json:"workflowId"`
	Message    string     `json:"message"`
}

// execRun hands a queued run to the workers, once: its task id is the run id.
func (s *Server) execRun(c echo.Context) error {
	rec, err := s.loadRun(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 10*time.Second)
	defer cancel()
	err = s.cfg.Store.Exec(ctx, rec.ID)
	var nq *run.NotQueuedError
	switch {
	case errors.As(err, &nq):
		msg := fmt.Sprintf("run %s is %s; only a queued run can be executed", rec.ID, nq.Status)
		if nq.Requested {
			msg = fmt.Sprintf("run %s was already executed and is queued for a worker; follow it at /agent/v1/run/%s/events", rec.ID, rec.ID)
		}
		return &Error{Status: http.StatusConflict, Type: typeConflict, Code: "run_not_queued", Message: msg}
	case errors.Is(err, run.ErrNotFound):
		return notFound("run", rec.ID)
	case err != nil:
		return unavailable(err)
	}
	task, err := s.executeTask(rec.ID)
	if err == nil {
		_, err = s.client.EnqueueContext(ctx, task)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		if uerr := s.cfg.Store.Unexec(ctx, rec.ID); uerr != nil {
			s.log.Error("undo exec of a run that could not be queued", "run", rec.ID, "err", uerr)
		}
		return unavailable(fmt.Errorf("enqueue: %w", err))
	}
	return c.JSON(http.StatusOK, execResponse{ID: rec.ID, Status: run.StatusRunning, WorkflowID: rec.ID,
		Message: fmt.Sprintf("Run started. Stream its events from /agent/v1/run/%s/events, poll /agent/v1/run/%s/status, or GET /agent/v1/run/%s/details for results.", rec.ID, rec.ID, rec.ID)})
}

// executeTask is the task that runs a run.
func (s *Server) executeTask(id string) (*asynq.Task, error) {
	return tasks.NewExecuteTask(id, tasks.ExecuteOptions{
		Timeout:   s.cfg.RunDeadline + 5*time.Minute,
		Retention: s.cfg.TaskRetention,
	})
}

// checkCallback checks a webhook URL a client registers.
func (s *Server) checkCallback(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.cfg.WebhookGuard.CheckURL(ctx, url); err != nil {
		return invalid("callbackUrl", "invalid_callback_url", "field callbackUrl %s", err)
	}
	return nil
}
