// Package tasks is the Asynq contract between the API and the workers: task
// type names, payloads and enqueue options. Producer and consumer both import it.
package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeExecute runs one run: the worker reads the run record, runs it in a
// sandbox and writes the result back into the record.
const TypeExecute = "agent:execute"

// QueueExecute is the queue execute tasks go to.
const QueueExecute = "execute"

// ExecutePayload names the run. Everything else is in the run record, which is
// the truth; the payload only points at it.
type ExecutePayload struct {
	RunID string `json:"runId"`
}

// ExecuteOptions tune how an execute task is enqueued.
type ExecuteOptions struct {
	// Timeout bounds one attempt; it must exceed the run deadline so the worker,
	// not Asynq, ends a run that runs too long.
	Timeout time.Duration
	// Retention keeps a finished task visible in the Asynq UI. Zero: not kept.
	Retention time.Duration
}

// NewExecuteTask returns the execute task of a run. The task id is the run id,
// so a run is enqueued at most once.
//
// MaxRetry is 1: the only retry is the one Asynq makes when a worker dies mid-run
// (its lease expires). Failures inside a run are failed runs, not task errors,
// so model spend is never repeated by a retry.
func NewExecuteTask(runID string, opt ExecuteOptions) (*asynq.Task, error) {
	payload, err := json.Marshal(ExecutePayload{RunID: runID})
	if err != nil {
		return nil, fmt.Errorf("encode execute payload: %w", err)
	}
	opts := []asynq.Option{
		asynq.TaskID(runID),
		asynq.Queue(QueueExecute),
		asynq.MaxRetry(1),
	}
	if opt.Timeout > 0 {
		opts = append(opts, asynq.Timeout(opt.Timeout))
	}
	if opt.Retention > 0 {
		opts = append(opts, asynq.Retention(opt.Retention))
	}
	return asynq.NewTask(TypeExecute, payload, opts...), nil
}

// ParseExecute decodes an execute task's payload.
func ParseExecute(t *asynq.Task) (ExecutePayload, error) {
	var p ExecutePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeExecute, err)
	}
	if p.RunID == "" {
		return p, fmt.Errorf("decode %s payload: no runId", TypeExecute)
	}
	return p, nil
}
