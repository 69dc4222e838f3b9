package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeWebhookDeliver delivers one webhook event to one URL.
const TypeWebhookDeliver = "webhook:deliver"

// QueueWebhooks is the queue webhook deliveries go to. Workers serve it with
// an Asynq server of its own, so deliveries never take a run's slot.
const QueueWebhooks = "webhooks"

// WebhookMaxRetry is how often a delivery is retried (with exponential backoff,
// the worker's ONESHOT_WEBHOOK_RETRY_DELAY doubled each time) before it is
// archived, visible in the Asynq UI.
const WebhookMaxRetry = 8

// WebhookPayload is one delivery: the body is made once, at the change, so
// that every retry sends the same bytes.
type WebhookPayload struct {
	URL       string          `json:"url"`
	RunID     string          `json:"runId"`
	EventID   string          `json:"eventId"`
	EventType string          `json:"eventType"`
	Body      json.RawMessage `json:"body"`
}

// NewWebhookTask returns the delivery task of an event to a URL.
func NewWebhookTask(p WebhookPayload) (*asynq.Task, error) {
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode webhook payload: %w", err)
	}
	return asynq.NewTask(TypeWebhookDeliver, payload,
		asynq.Queue(QueueWebhooks),
		asynq.MaxRetry(WebhookMaxRetry),
		asynq.Timeout(time.Minute), // above the HTTP timeout of a delivery
	), nil
}

// ParseWebhook decodes a delivery task's payload.
func ParseWebhook(t *asynq.Task) (WebhookPayload, error) {
	var p WebhookPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeWebhookDeliver, err)
	}
	if p.URL == "" || len(p.Body) == 0 {
		return p, fmt.Errorf("decode %s payload: no url or body", TypeWebhookDeliver)
	}
	return p, nil
}
