package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
)

// errRequeued marks a run handed back to the queue, not failed.
var errRequeued = errors.New("run handed back to the queue")

// handleExecute runs one attempt of a run. Whatever happens inside the run
// (model error, tool error, timeout, out of memory) ends as a failed run in the
// record; only a lost worker or lost Redis makes the task itself fail, so that
// Asynq's single retry runs it again.
func (w *Worker) handleExecute(ctx context.Context, t *asynq.Task) error {
	w.wg.Add(1)
	defer w.wg.Done()
	p, err := tasks.ParseExecute(t)
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	rec, err := w.cfg.Store.Start(ctx, p.RunID, w.cfg.ID)
	switch {
	case errors.Is(err, run.ErrNotFound):
		w.log.Warn("execute task for a run that no longer exists", "run", p.RunID)
		return fmt.Errorf("run %s: %w: %w", p.RunID, err, asynq.SkipRetry)
	case err != nil:
		return err
	case rec.Status.Terminal():
		// Cancelled before it started, or finished by an earlier attempt.
		w.log.Info("run already ended; not running it again", "run", rec.ID, "status", rec.Status)
		return nil
	}
	log := w.log.With("run", rec.ID, "attempt", rec.Attempts)
	if rec.Attempts == 1 {
		w.metrics.queueWait.Observe(time.Since(rec.CreatedAt).Seconds())
	}
	log.Debug("run started")

	w.metrics.inFlight.Inc()
	res := w.execute(ctx, rec, log)
	w.metrics.inFlight.Dec()

	if res == nil {
		// The worker is going away or lost its lease: hand the run back.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.cfg.Store.Requeue(hctx, rec.ID); err != nil && !errors.Is(err, run.ErrTerminal) {
			log.Error("hand run back to the queue", "err", err)
		}
		log.Info("run handed back to the queue", "cause", context.Cause(ctx))
		return errRequeued
	}
	if err := w.finish(ctx, rec.ID, res); err != nil {
		if errors.Is(err, run.ErrTerminal) {
			log.Info("run ended elsewhere before its result was written (cancelled?); result dropped by design", "status", res.Status)
			return nil
		}
		log.Error("write run result", "err", err)
		return err
	}
	w.metrics.runs.WithLabelValues(string(rec.Mode), string(res.Status)).Inc()
	w.metrics.runDuration.WithLabelValues(string(res.Status)).Observe(float64(res.Usage.DurationMs) / 1000)
	log.Info("run ended", "status", res.Status, "durationMs", res.Usage.DurationMs, "error", res.Error)
	if res.Status == run.StatusFailed {
		// Archived, not retried: the failure is the run's, and it is in the record.
		return fmt.Errorf("run failed: %s: %w", res.Error, asynq.SkipRetry)
	}
	return nil
}

// finish writes the result, retrying through a short Redis outage: a result
// is never dropped because Redis blinked.
func (w *Worker) finish(ctx context.Context, id string, res *run.Result) error {
	ctx = context.WithoutCancel(ctx)
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(2 * time.Minute)
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := w.cfg.Store.Finish(wctx, id, res)
		cancel()
		if err == nil || errors.Is(err, run.ErrTerminal) || errors.Is(err, run.ErrNotFound) || time.Now().After(deadline) {
			return err
		}
		w.log.Warn("write run result: retrying", "run", id, "err", err, "in", delay)
		time.Sleep(delay)
		delay = min(delay*2, 5*time.Second)
	}
}
