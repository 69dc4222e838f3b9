package api

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/internal/pubsub"
)

// Waiters wakes sync requests when their run ends. Each API process subscribes
// once, at start, to a channel of its own; a run record names the channel of
// the process waiting for it, and the worker publishes the run id there when
// the run ends. No Redis connection per waiting request.
//
// A wake-up only saves a poll: the waiter reads the record after every
// wake-up. Since pub/sub is at-most-once, one sweep per process also checks,
// every SweepInterval, which of the runs being waited for have ended (one
// pipelined read for all of them), and wakes their waiters. Waiting requests
// themselves never touch Redis, which keeps thousands of them cheap.
type Waiters struct {
	rdb     redis.UniversalClient
	channel string
	log     *slog.Logger
	// EndedFunc reports which of the runs have ended; the sweep calls it.
	EndedFunc func(ctx context.Context, ids []string) ([]string, error)
	// SweepInterval is the time between sweeps. Default 2s.
	SweepInterval time.Duration

	mu sync.Mutex
	// waiting holds the wake channels of each run's waiters: almost always
	// one, several for retries with the same Idempotency-Key.
	waiting map[string][]chan struct{}

	ready chan struct{}
}

// NewWaiters returns waiters listening on the given channel.
func NewWaiters(rdb redis.UniversalClient, channel string, log *slog.Logger) *Waiters {
	return &Waiters{rdb: rdb, channel: channel, log: log, waiting: map[string][]chan struct{}{}, ready: make(chan struct{})}
}

// Channel is the pub/sub channel of this process.
func (w *Waiters) Channel() string { return w.channel }

// Start subscribes and returns once the subscription is active, so that no
// wake-up published after it can be missed. It listens until ctx ends.
func (w *Waiters) Start(ctx context.Context) error {
	ps := w.rdb.Subscribe(ctx, w.channel)
	// Subscribe returns before the subscription is active; Receive waits for it.
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return fmt.Errorf("subscribe to %s: %w", w.channel, err)
	}
	close(w.ready)
	go w.listen(ctx, ps)
	if w.EndedFunc != nil {
		go w.sweepLoop(ctx)
	}
	return nil
}

// sweepLoop wakes the waiters of runs that ended without a wake-up reaching
// this process.
func (w *Waiters) sweepLoop(ctx context.Context) {
	t := time.NewTicker(cmp.Or(w.SweepInterval, 2*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.waiting))
		for id := range w.waiting {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		for len(ids) > 0 {
			batch := ids[:min(len(ids), 1000)]
			ids = ids[len(batch):]
			ended, err := w.EndedFunc(ctx, batch)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("sweep of waited runs failed", "err", err)
				}
				break
			}
			for _, id := range ended {
				w.wake(id)
			}
		}
	}
}

// listen wakes the waiter of each run announced on the reply channel. After a
// gap in the subscription, wake-ups may have been lost: every waiter re-reads
// its record.
func (w *Waiters) listen(ctx context.Context, ps *redis.PubSub) {
	pubsub.Receive(ctx, ps, w.log, "reply channel", w.wake, w.wakeAll)
}

// Add registers a waiter for a run. Call it once the run's record exists (the
// sweep takes a missing record for an ended run) and before its task is
// enqueued. The returned channel receives a value on every wake-up; call done
// when finished.
func (w *Waiters) Add(runID string) (wake <-chan struct{}, done func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.waiting[runID] = append(w.waiting[runID], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		chans := slices.DeleteFunc(w.waiting[runID], func(c chan struct{}) bool { return c == ch })
		if len(chans) == 0 {
			delete(w.waiting, runID)
		} else {
			w.waiting[runID] = chans
		}
	}
}

// Len is the number of runs being waited for.
func (w *Waiters) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiting)
}

func (w *Waiters) wake(runID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.waiting[runID] {
		notify(ch)
	}
}

func (w *Waiters) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, chans := range w.waiting {
		for _, ch := range chans {
			notify(ch)
		}
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
