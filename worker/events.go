package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oneshot-dev/oneshot/run"
)

// eventBatch bounds the events written in one round trip; eventQueue, the
// events waiting while a write is in flight; eventLinger, how long the first
// event of a batch waits for others. A run's events come in bursts (a model's
// deltas, a tool's start and end), and a short run's all go with its result.
const (
	eventBatch  = 256
	eventQueue  = 64
	eventLinger = 2 * time.Millisecond
)

// eventWriter appends a run's events to its stream as they come, batching
// those that come within eventLinger of the first, or while the previous write
// is in flight. It never
// drops an event: when Redis is slow, Add blocks (back-pressure reaches the
// runtime through its stdout), and a failed write is retried.
type eventWriter struct {
	store *run.Store
	runID string
	log   *slog.Logger
	ch    chan run.Event
	done  chan struct{}
	once  sync.Once

	// keep, once set by Drain, makes the loop keep what it has not yet
	// written in rest instead of writing it.
	keep atomic.Bool
	rest []run.Event

	// The attempt's sandbox, to record with the next write (SetRuntime).
	mu                  sync.Mutex
	provider, runtimeID string
}

// SetRuntime records the attempt's sandbox with the next write of events, or
// with the result (Runtime after Drain).
func (w *eventWriter) SetRuntime(provider, runtimeID string) {
	w.mu.Lock()
	w.provider, w.runtimeID = provider, runtimeID
	w.mu.Unlock()
}

// Runtime returns the sandbox set by SetRuntime and not yet written, and
// forgets it.
func (w *eventWriter) Runtime() (provider, runtimeID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	provider, runtimeID = w.provider, w.runtimeID
	w.provider, w.runtimeID = "", ""
	return provider, runtimeID
}

func newEventWriter(store *run.Store, runID string, log *slog.Logger) *eventWriter {
	w := &eventWriter{store: store, runID: runID, log: log, ch: make(chan run.Event, eventQueue), done: make(chan struct{})}
	go w.loop()
	return w
}

// Add queues an event.
func (w *eventWriter) Add(e run.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	w.ch <- e
}

// Close writes what is queued and stops.
func (w *eventWriter) Close() {
	w.once.Do(func() { close(w.ch) })
	<-w.done
}

// Drain stops the writer and returns, in order, the events it has not yet
// written (after a write in flight, if any, has ended). The caller writes
// them, and the sandbox Runtime still returns: Finish does it in its own
// round trip.
func (w *eventWriter) Drain() []run.Event {
	w.keep.Store(true)
	w.Close()
	return w.rest
}

func (w *eventWriter) loop() {
	defer close(w.done)
	batch := make([]run.Event, 0, eventQueue)
	linger := time.NewTimer(eventLinger)
	defer linger.Stop()
	for e := range w.ch {
		batch = append(batch[:0], e)
		linger.Reset(eventLinger)
	collect:
		for len(batch) < eventBatch {
			select {
			case e, ok := <-w.ch:
				if !ok {
					break collect // Close or Drain: no more waiting
				}
				batch = append(batch, e)
			case <-linger.C:
				break collect
			}
		}
		if w.keep.Load() {
			w.rest = append(w.rest, batch...)
			continue
		}
		w.write(batch)
	}
}

func (w *eventWriter) write(batch []run.Event) {
	provider, runtimeID := w.Runtime()
	delay := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := w.store.AppendRuntime(ctx, w.runID, provider, runtimeID, batch)
		cancel()
		if err == nil {
			return
		}
		if errors.Is(err, run.ErrNotFound) || attempt == 10 {
			// The record is gone (expired or deleted): nobody can read them.
			w.log.Error("events not written", "run", w.runID, "events", len(batch), "err", err)
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
}
