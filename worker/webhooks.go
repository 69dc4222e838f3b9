package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
	"github.com/oneshot-dev/oneshot/webhook"
)

// newWebhookServer returns the Asynq server of webhook deliveries: a server
// of its own, so that deliveries to slow receivers never take a run's slot,
// and so that their retries back off exponentially while a run's do not.
func (w *Worker) newWebhookServer() *asynq.Server {
	cfg := w.cfg
	return asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:              cfg.WebhookConcurrency,
		Queues:                   map[string]int{tasks.QueueWebhooks: 1},
		TaskCheckInterval:        max(cfg.TaskCheckInterval, 100*time.Millisecond),
		DelayedTaskCheckInterval: min(max(cfg.WebhookRetryDelay, 100*time.Millisecond), 5*time.Second),
		ShutdownTimeout:          cfg.WebhookTimeout + time.Second,
		BaseContext:              func() context.Context { return w.base },
		Logger:                   asynqLogger{w.log},
		LogLevel:                 asynq.WarnLevel,
		RetryDelayFunc:           func(n int, _ error, _ *asynq.Task) time.Duration { return webhookBackoff(cfg.WebhookRetryDelay, n) },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx) // the task given here has no ResultWriter
			w.log.Warn("webhook not delivered", "task", id, "err", err)
		}),
	})
}

// webhookBackoff is base·2^n, give or take a tenth, at most an hour.
func webhookBackoff(base time.Duration, n int) time.Duration {
	d := min(base<<min(n, 20), time.Hour)
	return d + time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
}

// handleWebhook delivers one event to one URL. A non-2xx answer or a network
// error is retried; an address that is not allowed is not.
func (w *Worker) handleWebhook(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseWebhook(t)
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	err = w.sender.Deliver(ctx, p.URL, p.EventID, p.EventType, p.Body)
	switch {
	case errors.Is(err, webhook.ErrForbiddenAddress):
		w.log.Warn("webhook refused: address not allowed", "run", p.RunID, "event", p.EventType, "url", p.URL, "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case err != nil:
		return fmt.Errorf("deliver %s of %s to %s: %w", p.EventType, p.RunID, p.URL, err)
	}
	w.log.Debug("webhook delivered", "run", p.RunID, "event", p.EventType, "url", p.URL)
	return nil
}

// notifyEnd tells the run's webhooks that it ended, with the record as written.
func (w *Worker) notifyEnd(ctx context.Context, id string, res *run.Result, urls []string) {
	if len(urls) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec, err := w.cfg.Store.Get(ctx, id)
	if err != nil {
		w.log.Error("read run for its webhooks", "run", id, "err", err)
		return
	}
	w.notifier.Notify(ctx, webhook.EndType(res.Status), rec, urls)
}
