package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/run"
)

// eventHub wakes the event streams (SSE) this process serves when their run
// has new events. Each process holds one pub/sub connection; a run's channel
// is subscribed while at least one of its streams is open here, and the
// store's scripts publish on it whenever they append events. Like the sync
// waiters, a wake-up only saves a poll: streams read the run's event stream
// (XRANGE after their last sequence number) on every wake-up, and now and
// then anyway. So following a live run costs no Redis connection per stream
// and no blocking read, and a client that goes away releases everything at once.
type eventHub struct {
	rdb   redis.UniversalClient
	store *run.Store
	log   *slog.Logger
	ps    *redis.PubSub

	mu      sync.Mutex
	follows map[string]*follow // by channel
}

type follow struct {
	subs  map[chan struct{}]struct{}
	ready chan struct{} // closed when the subscription is confirmed
}

func newEventHub(rdb redis.UniversalClient, store *run.Store, log *slog.Logger) *eventHub {
	return &eventHub{rdb: rdb, store: store, log: log, follows: map[string]*follow{}}
}

// Start opens the hub's pub/sub connection and listens until ctx ends.
func (h *eventHub) Start(ctx context.Context) error {
	// A channel of its own, so that the connection exists from the start.
	h.ps = h.rdb.Subscribe(ctx, h.store.EventsChannel("hub:"+run.NewID("api")))
	if _, err := h.ps.Receive(ctx); err != nil {
		h.ps.Close()
		return fmt.Errorf("subscribe to run events: %w", err)
	}
	go h.listen(ctx)
	return nil
}

func (h *eventHub) listen(ctx context.Context) {
	defer h.ps.Close()
	for {
		msg, err := h.ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		switch m := msg.(type) {
		case *redis.Message:
			h.wake(m.Channel)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				h.mu.Lock()
				if f := h.follows[m.Channel]; f != nil {
					select {
					case <-f.ready:
					default:
						close(f.ready)
					}
				}
				h.mu.Unlock()
			}
			// After a reconnect, events may have been published unheard.
			h.wake(m.Channel)
		case *redis.Pong:
		default:
			if err != nil {
				h.log.Warn("run events: receive failed; reconnecting", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				h.wakeAll()
			}
		}
	}
}

// follow registers a stream of a run; the channel receives a value when the
// run may have new events. It returns once the subscription is active (or
// after a short while: the stream's own polls cover the rest).
func (h *eventHub) follow(ctx context.Context, runID string) (<-chan struct{}, func()) {
	channel := h.store.EventsChannel(runID)
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	f := h.follows[channel]
	if f == nil {
		f = &follow{subs: map[chan struct{}]struct{}{}, ready: make(chan struct{})}
		h.follows[channel] = f
		// Under the lock, so that subscribes and unsubscribes of a channel
		// reach Redis in the order of the decisions.
		if err := h.ps.Subscribe(ctx, channel); err != nil {
			h.log.Warn("subscribe to run events", "run", runID, "err", err)
		}
	}
	f.subs[ch] = struct{}{}
	h.mu.Unlock()
	select {
	case <-f.ready:
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(f.subs, ch)
		if len(f.subs) == 0 && h.follows[channel] == f {
			delete(h.follows, channel)
			if err := h.ps.Unsubscribe(context.Background(), channel); err != nil {
				h.log.Debug("unsubscribe from run events", "run", runID, "err", err)
			}
		}
	}
}

func (h *eventHub) wake(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.follows[channel]; f != nil {
		for ch := range f.subs {
			notify(ch)
		}
	}
}

func (h *eventHub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.follows {
		for ch := range f.subs {
			notify(ch)
		}
	}
}

// EventStreams is the number of runs whose events this process streams now.
func (s *Server) EventStreams() int { return s.events.Streams() }

// Streams is the number of runs whose events this process streams now.
func (h *eventHub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.follows)
}

const (
	// eventsBatch bounds the events read from Redis at once.
	eventsBatch = 500
	// eventsPoll is how often an idle stream reads anyway, in case a wake-up
	// was lost, and checks that its run still exists.
	eventsPoll = 2 * time.Second
	// eventsWriteTimeout bounds one write to a client that does not read.
	eventsWriteTimeout = 30 * time.Second
)

// runEvents streams a run's events as Server-Sent Events, from the one after
// Last-Event-ID (the header, or the lastEventId query parameter) to the run's
// end: "id: <seq>", "event: <type>", "data: <the event as JSON>". The stream
// closes after the run_end event; an idle stream gets a ": ping" comment
// every EventsHeartbeat. It also closes when the server drains; the client
// then reconnects with Last-Event-ID, to any replica.
func (s *Server) runEvents(c echo.Context) error {
	rec, err := s.loadRun(c)
	if err != nil {
		return err
	}
	after, err := lastEventID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	wake, done := s.events.follow(ctx, rec.ID)
	defer done()

	w := c.Response()
	// Long-lived: lift the server's read and write deadlines, and bound each
	// write instead.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	w.Flush()

	heartbeat := time.NewTicker(s.cfg.EventsHeartbeat)
	defer heartbeat.Stop()
	poll := time.NewTimer(jitter(eventsPoll))
	defer poll.Stop()
	// A run that had ended when the stream opened has its run_end in the
	// stream: once nothing follows `after`, the client has it all.
	ended := rec.Status.Terminal()
	var buf bytes.Buffer
	for {
		events, err := s.cfg.Store.Events(ctx, rec.ID, after, eventsBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("read run events", "run", rec.ID, "err", err)
		}
		if len(events) > 0 {
			buf.Reset()
			end := false
			for _, e := range events {
				writeEvent(&buf, e)
				after = e.Seq
				end = end || e.Type == run.EventEnd
			}
			_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil // the client went away
			}
			w.Flush()
			if end {
				return nil
			}
			if len(events) == eventsBatch {
				continue
			}
		} else if ended && err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.draining:
			return nil
		case <-wake:
		case <-heartbeat.C:
			_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return nil
			}
			w.Flush()
		case <-poll.C:
			poll.Reset(jitter(eventsPoll))
			// A run that has ended has its run_end in the stream, so a
			// stream past it, or of a run that expired, has nothing to wait for.
			st, err := s.cfg.Store.Status(ctx, rec.ID)
			if err == nil && st.Terminal() || errors.Is(err, run.ErrNotFound) {
				if more, _ := s.cfg.Store.Events(ctx, rec.ID, after, 1); len(more) == 0 {
					return nil
				}
			}
		}
	}
}

// writeEvent writes one event in the SSE format.
func writeEvent(buf *bytes.Buffer, e run.Event) {
	data, err := json.Marshal(e)
	if err != nil {
		data = []byte(`{}`)
	}
	fmt.Fprintf(buf, "id: %d\nevent: %s\n", e.Seq, strings.Map(noNewline, e.Type))
	// json.Marshal never writes a raw newline, so the data is one line.
	buf.WriteString("data: ")
	buf.Write(data)
	buf.WriteString("\n\n")
}

func noNewline(r rune) rune {
	if r == '\n' || r == '\r' {
		return -1
	}
	return r
}

// lastEventID reads where a stream resumes: the Last-Event-ID header, or the
// lastEventId query parameter for clients that cannot set headers.
func lastEventID(c echo.Context) (int64, error) {
	param, v := "Last-Event-ID", c.Request().Header.Get("Last-Event-ID")
	if v == "" {
		param, v = "lastEventId", c.QueryParam("lastEventId")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, invalid(param, "invalid_last_event_id", "%s is %q: it must be the id (a sequence number, 0 or more) of the last event received", param, v)
	}
	return n, nil
}

// jitter returns d plus up to a quarter of it, at random, so that many
// streams do not poll in step.
func jitter(d time.Duration) time.Duration { return d + rand.N(d/4+1) }
