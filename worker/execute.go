package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
	"github.com/oneshot-dev/oneshot/webhook"
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
	// Watched from before it starts, so that no cancel is missed. A cancel
	// ends runCtx only: the task itself then succeeds (a cancelled context of
	// the task's own would make Asynq run it again).
	runCtx, stopWatch := w.watchCancel(ctx, p.RunID)
	defer stopWatch()
	rec, err := w.cfg.Store.Start(ctx, p.RunID, w.cfg.ID)
	switch {
	case errors.Is(err, run.ErrNotFound):
		w.log.Warn("execute task for a run that no longer exists", "run", p.RunID)
		return fmt.Errorf("run %s: %w: %w", p.RunID, err, asynq.SkipRetry)
	case err != nil:
		return err
	case rec.Status.Terminal():
		// Cancelled before it started, or finished by an earlier attempt
		// (which counted it).
		if rec.Status == run.StatusCancelled {
			w.metrics.runs.WithLabelValues(string(rec.Mode), string(rec.Status)).Inc()
		}
		w.log.Info("run already ended; not running it again", "run", rec.ID, "status", rec.Status)
		return nil
	}
	log := w.log.With("run", rec.ID, "attempt", rec.Attempts)
	if rec.Attempts == 1 {
		w.metrics.queueWait.Observe(time.Since(rec.CreatedAt).Seconds())
		w.notifier.Notify(ctx, webhook.RunStarted, rec, rec.Callbacks)
	}
	log.Debug("run started")

	w.metrics.inFlight.Inc()
	res, reason, destroy := w.execute(runCtx, rec, log)
	// Deferred: the sandbox goes after the result is stored and published.
	defer destroy()
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
	if res.Status == run.StatusCancelled {
		// The cancel wrote the run's end; the sandbox is destroyed. What the
		// attempt did (logs, usage) is kept, and the task succeeds: nothing
		// runs again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.cfg.Store.SaveCancelled(sctx, rec.ID, res); err != nil {
			log.Warn("keep the logs of a cancelled run", "err", err)
		}
		w.metrics.runs.WithLabelValues(string(rec.Mode), string(res.Status)).Inc()
		log.Info("run cancelled; sandbox destroyed", "durationMs", res.Usage.DurationMs)
		return nil
	}
	urls, err := w.finish(ctx, rec.ID, res)
	if err != nil {
		if errors.Is(err, run.ErrTerminal) {
			w.appendEvents(ctx, rec.ID, res.Events)
			w.countEndedElsewhere(ctx, rec)
			log.Info("run ended elsewhere before its result was written (cancelled?); result dropped by design", "status", res.Status)
			return nil
		}
		log.Error("write run result", "err", err)
		return err
	}
	w.metrics.runs.WithLabelValues(string(rec.Mode), string(res.Status)).Inc()
	w.metrics.runDuration.WithLabelValues(string(res.Status)).Observe(float64(res.Usage.DurationMs) / 1000)
	if res.Status == run.StatusFailed && reason != "" {
		w.metrics.failures.WithLabelValues(reason).Inc()
	}
	log.Info("run ended", "status", res.Status, "durationMs", res.Usage.DurationMs, "error", res.Error)
	w.notifyEnd(ctx, rec.ID, res, urls)
	if res.Status == run.StatusFailed {
		// Archived, not retried: the failure is the run's, and it is in the record.
		return fmt.Errorf("run failed: %s: %w", res.Error, asynq.SkipRetry)
	}
	return nil
}

// appendEvents writes the last events of an attempt whose result was not
// written, so that its stream still tells what the attempt did.
func (w *Worker) appendEvents(ctx context.Context, id string, events []run.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := w.cfg.Store.Append(ctx, id, events); err != nil {
		w.log.Warn("events of an attempt that ended elsewhere not written", "run", id, "events", len(events), "err", err)
	}
}

// countEndedElsewhere counts a run that ended while this worker ran it: a
// user cancelled it. A run finished by another attempt was counted there.
func (w *Worker) countEndedElsewhere(ctx context.Context, rec *run.Record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if now, err := w.cfg.Store.Get(ctx, rec.ID); err == nil && now.Status == run.StatusCancelled {
		w.metrics.runs.WithLabelValues(string(rec.Mode), string(now.Status)).Inc()
	}
}

// finish writes the result, retrying through a short Redis outage: a result
// is never dropped because Redis blinked. It returns the webhook URLs to tell.
func (w *Worker) finish(ctx context.Context, id string, res *run.Result) ([]string, error) {
	ctx = context.WithoutCancel(ctx)
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(2 * time.Minute)
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		urls, err := w.cfg.Store.FinishCallbacks(wctx, id, res)
		cancel()
		if err == nil || errors.Is(err, run.ErrTerminal) || errors.Is(err, run.ErrNotFound) || time.Now().After(deadline) {
			return urls, err
		}
		w.log.Warn("write run result: retrying", "run", id, "err", err, "in", delay)
		time.Sleep(delay)
		delay = min(delay*2, 5*time.Second)
	}
}
