package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oneshot-dev/oneshot/internal/pubsub"
	"github.com/oneshot-dev/oneshot/run"
)

// errCancelled is the cause of a run's context when a user cancelled the run.
var errCancelled = errors.New("run cancelled")

// cancels knows the runs this worker is running, to stop one when its cancel
// is announced. The store's cancel script publishes the run id on the cancel
// channel, which every worker subscribes to when it starts; pub/sub is
// at-most-once, so each running run also polls its status now and then.
type cancels struct {
	mu   sync.Mutex
	runs map[string]context.CancelCauseFunc
}

// listenCancels subscribes to the cancel channel and returns once the
// subscription is active, so that no cancel published later is missed.
func (w *Worker) listenCancels(ctx context.Context) error {
	ps := w.cfg.Redis.Subscribe(ctx, w.cfg.Store.CancelChannel())
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return fmt.Errorf("subscribe to %s: %w", w.cfg.Store.CancelChannel(), err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		// After a gap in the subscription, announcements may have been lost:
		// the status polls of the running runs catch them.
		pubsub.Receive(ctx, ps, w.log, "cancel channel", w.cancelRun, func() {})
	}()
	return nil
}

// cancelRun stops the run if this worker runs it: its context is cancelled,
// which destroys its sandbox.
func (w *Worker) cancelRun(id string) {
	w.cancels.mu.Lock()
	cancel := w.cancels.runs[id]
	w.cancels.mu.Unlock()
	if cancel != nil {
		w.log.Info("run cancelled by request; destroying its sandbox", "run", id)
		cancel(errCancelled)
	}
}

// watchCancel returns a context of the run that ends, with cause errCancelled,
// when the run is cancelled: on the announcement, or when a poll of its
// status finds it cancelled (if the announcement was lost). Call stop when
// the attempt is over.
func (w *Worker) watchCancel(ctx context.Context, id string) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	w.cancels.mu.Lock()
	if w.cancels.runs == nil {
		w.cancels.runs = map[string]context.CancelCauseFunc{}
	}
	w.cancels.runs[id] = cancel
	w.cancels.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(w.cfg.CancelPollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := w.cfg.Store.Status(ctx, id)
			if err == nil && st == run.StatusCancelled {
				w.log.Info("run found cancelled by its status poll", "run", id)
				cancel(errCancelled)
				return
			}
		}
	}()
	return ctx, func() {
		w.cancels.mu.Lock()
		delete(w.cancels.runs, id)
		w.cancels.mu.Unlock()
		cancel(nil)
		<-done
	}
}
