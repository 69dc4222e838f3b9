package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
	"github.com/oneshot-dev/oneshot/webhook"
)

type cancelResponse struct {
	ID      string     `json:"id"`
	Status  run.Status `json:"status"`
	Message string     `json:"message,omitempty"`
}

// cancelRun ends a queued or running run as cancelled. The store's cancel
// script does it atomically and announces it to the workers: the one running
// the run destroys its sandbox. A queued run's pending task is deleted too
// (a worker that takes it anyway finds the run ended and leaves it). Cancel is
// idempotent: a run that has ended is left as it is, and the answer says so.
func (s *Server) cancelRun(c echo.Context) error {
	rec, err := s.loadRun(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 10*time.Second)
	defer cancel()
	out, err := s.cfg.Store.Cancel(ctx, rec.ID)
	if errors.Is(err, run.ErrNotFound) {
		return notFound("run", rec.ID)
	}
	if err != nil {
		return unavailable(err)
	}
	if !out.Now {
		msg := fmt.Sprintf("the run had already ended (%s); nothing to cancel", out.Status)
		if out.Status == run.StatusCancelled {
			msg = "the run was already cancelled"
		}
		return c.JSON(http.StatusOK, cancelResponse{ID: rec.ID, Status: out.Status, Message: msg})
	}
	if out.Status == run.StatusQueued {
		// Only a queued run's task is deleted: a running run's task completes
		// on its own once the worker has stopped it, and deleting it then
		// would erase it from the Asynq UI.
		err := s.inspector.DeleteTask(tasks.QueueExecute, rec.ID)
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			// Active (a worker has just taken it) or Redis trouble: the
			// record wins anyway.
			s.log.Debug("delete the task of a cancelled run", "run", rec.ID, "err", err)
		}
	}
	if len(out.Callbacks) > 0 {
		if latest, err := s.cfg.Store.Get(ctx, rec.ID); err == nil {
			s.notifier.Notify(ctx, webhook.RunCancelled, latest, out.Callbacks)
		} else {
			s.log.Error("read a cancelled run for its webhooks", "run", rec.ID, "err", err)
		}
	}
	return c.JSON(http.StatusOK, cancelResponse{ID: rec.ID, Status: run.StatusCancelled})
}

type watchRequest struct {
	CallbackURL *string `json:"callbackUrl"`
}

type watchResponse struct {
	OK          bool   `json:"ok"`
	CallbackURL string `json:"callbackUrl"`
}

// watchRun registers a webhook URL for a run's next changes. Watching a run
// that has ended sends its end event to the URL at once, so that a watch that
// comes just too late still hears how the run ended.
func (s *Server) watchRun(c echo.Context) error {
	rec, err := s.loadRun(c)
	if err != nil {
		return err
	}
	var req watchRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.CallbackURL == nil || *req.CallbackURL == "" {
		return invalid("callbackUrl", "missing_field", "field callbackUrl is required: the https URL to send the run's events to")
	}
	ctx := c.Request().Context()
	if err := s.checkCallback(ctx, *req.CallbackURL); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	st, added, err := s.cfg.Store.Watch(wctx, rec.ID, *req.CallbackURL)
	switch {
	case errors.Is(err, run.ErrNotFound):
		return notFound("run", rec.ID)
	case errors.Is(err, run.ErrTooManyCallbacks):
		return invalid("callbackUrl", "too_many_callbacks", "run %s already has %d callback URLs, the most it can have", rec.ID, run.MaxCallbacks)
	case err != nil:
		return unavailable(err)
	}
	if added && st.Terminal() {
		if latest, err := s.cfg.Store.Get(wctx, rec.ID); err == nil {
			s.notifier.Notify(wctx, webhook.EndType(latest.Status), latest, []string{*req.CallbackURL})
		}
	}
	return c.JSON(http.StatusOK, watchResponse{OK: true, CallbackURL: *req.CallbackURL})
}
