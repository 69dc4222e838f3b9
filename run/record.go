// Package run owns the run record: its fields, its state machine, and its store
// and event stream in Redis. The record is the truth about a run; everything
// else (pub/sub wake-ups, Asynq's task state) only points at it.
package run

import (
	"crypto/rand"
	"encoding/base32"
	"github.com/oneshot-dev/oneshot/agent"
	"strings"
	"time"

	"github.com/oneshot-dev/oneshot/sandbox"
)

// Status is where a run is in its life.
type Status string

// Run states: queued -> running -> completed | failed; queued | running -> cancelled.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether no further change can happen to a run in this state.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// RuntimeState follows the run's sandbox: pending -> running -> ended | error.
type RuntimeState string

const (
	RuntimePending RuntimeState = "pending"
	RuntimeRunning RuntimeState = "running"
	RuntimeEnded   RuntimeState = "ended"
	RuntimeError   RuntimeState = "error"
)

// Mode says how the run was asked for.
type Mode string

const (
	ModeSync   Mode = "sync"   // execute, waiting for the result
	ModeLegacy Mode = "legacy" // execute with agentRuntime: true, polled
	ModeRun    Mode = "run"    // created by POST /agent/v1/run, started by exec
)

// Spec is what to run: the request, after defaults.
type Spec struct {
	Prompt        string       `json:"prompt"`
	Instructions  string       `json:"instructions,omitempty"`
	Guidance      string       `json:"guidance,omitempty"`
	Model         string       `json:"model"`
	VaultIDs      []string     `json:"vaultIds,omitempty"`
	ObjectIDs     []string     `json:"objectIds,omitempty"`
	Tools         []string     `json:"tools"` // the tools offered, API names
	Sandbox       sandbox.Spec `json:"sandbox"`
	Ephemeral     bool         `json:"ephemeral,omitempty"` // the agent exists only for this run
	DeadlineMs    int64        `json:"deadlineMs,omitempty"`
	MaxTurns      int          `json:"maxTurns,omitempty"`
	MaxTokens     int          `json:"maxTokens,omitempty"`
	EnabledTools  []string     `json:"enabledTools,omitempty"`
	DisabledTools []string     `json:"disabledTools,omitempty"`
}

// Logs are the run's two logs: the worker's and the runtime's.
type Logs struct {
	Runner  string `json:"runner"`
	Runtime string `json:"runtime"`
}

// Usage is what a run consumed.
type Usage struct {
	Model        string       `json:"model"`
	InputTokens  int          `json:"inputTokens"`
	OutputTokens int          `json:"outputTokens"`
	ToolCalls    int          `json:"toolCalls"`
	DurationMs   int64        `json:"durationMs"`
	Entries      []UsageEntry `json:"entries,omitempty"`
}

// UsageEntry is one billable call a run made.
type UsageEntry struct {
	ID               string    `json:"id"`
	Kind             string    `json:"kind"` // llm | api
	Service          string    `json:"service"`
	Endpoint         string    `json:"endpoint,omitempty"`
	Method           string    `json:"method,omitempty"`
	StatusCode       int       `json:"statusCode,omitempty"`
	CostMicros       int64     `json:"costMicros"`
	PromptTokens     int       `json:"promptTokens"`
	CompletionTokens int       `json:"completionTokens"`
	TotalTokens      int       `json:"totalTokens"`
	Model            string    `json:"model,omitempty"`
	DurationMs       int64     `json:"durationMs"`
	Timestamp        time.Time `json:"timestamp"`
}

// Step is one thing the agent did, for run details, as the runtime reported it.
type Step = agent.Step

// Result is what a finished attempt writes into the record.
type Result struct {
	Status       Status
	RuntimeState RuntimeState
	Output       string
	Error        string
	Logs         Logs
	Usage        Usage
	Steps        []Step
	// Events are the attempt's last events, not yet in the stream: Finish
	// appends them before run_end, in the same round trip.
	Events []Event
	// Provider and RuntimeID name the attempt's sandbox when it is not yet
	// recorded (a short run's is recorded with its result).
	Provider, RuntimeID string
}

// Record is a run as stored.
type Record struct {
	ID           string
	AgentID      string
	Org          string
	Mode         Mode
	Status       Status
	Spec         Spec
	Provider     string // the sandbox driver that ran it
	RuntimeID    string // the sandbox id
	RuntimeState RuntimeState
	Output       string
	Error        string
	Logs         Logs
	Usage        *Usage
	Steps        []Step
	Attempts     int
	Worker       string // the worker that ran the latest attempt
	ReplyTo      string // the pub/sub channel of the waiting API process, if any
	// Callbacks are the webhook URLs told about the run's changes.
	Callbacks []string
	// ExecAt is when the run was handed to the queue: at creation for an
	// execute, at exec for a run created first. Zero: not yet.
	ExecAt      time.Time
	CreatedAt   time.Time
	StartedAt   time.Time
	CompletedAt time.Time
}

// Duration is the time from start to completion, or zero.
func (r *Record) Duration() time.Duration {
	if r.StartedAt.IsZero() || r.CompletedAt.IsZero() {
		return 0
	}
	return r.CompletedAt.Sub(r.StartedAt)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new random id with the given prefix, e.g. NewID("run").
func NewID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// ValidID reports whether s looks like an id of the given prefix, so that
// garbage never reaches Redis as a key.
func ValidID(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) == 0 || len(rest) > 64 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
