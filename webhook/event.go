package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
)

// Event types.
const (
	RunCreated   = "agent.run.created"
	RunStarted   = "agent.run.started"
	RunCompleted = "agent.run.completed"
	RunFailed    = "agent.run.failed"
	RunCancelled = "agent.run.cancelled"
)

// EndType is the event type of a run's end in the given status.
func EndType(s run.Status) string {
	switch s {
	case run.StatusCompleted:
		return RunCompleted
	case run.StatusCancelled:
		return RunCancelled
	default:
		return RunFailed
	}
}

// Event is the body of a delivery.
type Event struct {
	ID        string    `json:"id"` // evt_...; the same on every retry
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	Data      RunData   `json:"data"`
}

// RunData is the run as an event shows it.
type RunData struct {
	ID          string     `json:"id"`
	AgentID     string     `json:"agentId"`
	Status      run.Status `json:"status"`
	Error       *string    `json:"error"`
	Output      *string    `json:"output,omitempty"` // when the run has ended
	Model       string     `json:"model"`
	CreatedAt   time.Time  `json:"createdAt"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	DurationMs  *int64     `json:"durationMs"`
}

// NewEvent returns the event of type typ about rec as it is now.
func NewEvent(typ string, rec *run.Record) Event {
	d := RunData{
		ID: rec.ID, AgentID: rec.AgentID, Status: rec.Status, Model: rec.Spec.Model,
		CreatedAt: rec.CreatedAt, StartedAt: timePtr(rec.StartedAt), CompletedAt: timePtr(rec.CompletedAt),
	}
	if rec.Error != "" {
		d.Error = &rec.Error
	}
	if rec.Status == run.StatusCompleted || rec.Status == run.StatusFailed || rec.Output != "" {
		d.Output = &rec.Output
	}
	if ms := rec.Duration().Milliseconds(); ms > 0 {
		d.DurationMs = &ms
	}
	return Event{ID: run.NewID("evt"), Type: typ, CreatedAt: time.Now().UTC(), Data: d}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Enqueuer is what a Notifier needs of an Asynq client.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Notifier queues deliveries. It never blocks a run for long and never fails
// it: a delivery that cannot be queued is logged.
type Notifier struct {
	Client Enqueuer
	Logger *slog.Logger
}

// Notify queues the event of type typ about rec for each URL.
func (n *Notifier) Notify(ctx context.Context, typ string, rec *run.Record, urls []string) {
	if n == nil || len(urls) == 0 {
		return
	}
	if err := n.notify(ctx, typ, rec, urls); err != nil {
		log := n.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Error("queue webhook deliveries", "run", rec.ID, "event", typ, "err", err)
	}
}

func (n *Notifier) notify(ctx context.Context, typ string, rec *run.Record, urls []string) error {
	ev := NewEvent(typ, rec)
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var errs []error
	for _, u := range urls {
		task, err := tasks.NewWebhookTask(tasks.WebhookPayload{URL: u, RunID: rec.ID, EventID: ev.ID, EventType: typ, Body: body})
		if err == nil {
			_, err = n.Client.EnqueueContext(ctx, task)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
		}
	}
	return errors.Join(errs...)
}
