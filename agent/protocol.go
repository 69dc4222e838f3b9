// Package agent is the runtime that runs inside a sandbox (`oneshot agent`):
// the agent loop, its tools, and the protocol that ties it to the worker.
//
// # Protocol
//
// The runtime speaks JSON lines: one JSON object per line on stdin (from the
// worker) and stdout (to the worker). Stderr carries the runtime's own
// diagnostics, which the worker keeps in the runner log. Every object has a
// "type"; the runtime writes it first, so that the worker routes an event line
// and stores it whole without decoding it (LeadingType).
//
// Worker to runtime:
//
//	{"type":"task","task":{...Task}}                       first line, exactly once
//	{"type":"model_response","id":"m1","response":{...}}    answer to a model_request
//	{"type":"model_response","id":"m1","error":"..."}       the model call failed
//	{"type":"tool_response","id":"t1","output":"...","isError":false}
//
// Runtime to worker:
//
//	{"type":"agent_start"} {"type":"turn_start","turn":1} {"type":"message_start",...}
//	{"type":"message_end",...} {"type":"tool_execution_start","toolCallId":..,"toolName":..,"args":..}
//	{"type":"tool_execution_end",...} {"type":"turn_end",...} {"type":"agent_end",...}
//	                                                        events, kept in the run's stream
//	{"type":"log","line":"..."}                             a line of the runtime log
//	{"type":"model_request","id":"m1","request":{...}}      a model call, made by the worker
//	{"type":"tool_request","id":"t1","tool":"vault.search","input":{...}}
//	                                                        a host-side (service) tool call
//	{"type":"result","output":"...","error":"...","steps":[...]}   last line, exactly once
//
// The sandbox has no network: model calls and service tools go through the
// worker, which holds the credentials and enforces the budgets (turns, tokens,
// deadline) and the tool allow-list on its side too. The task names the run's
// tools; the runtime knows them from its Catalog. A model_request carries no
// tools and no model: the worker offers the run's tools (OfferedTools) and
// calls the run's model, whatever the runtime asks. A runtime that prints a
// line that is not JSON, a line over MaxLineBytes, or exits without a result
// fails its run.
package agent

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/oneshot-dev/oneshot/chat"
)

// MaxLineBytes bounds one protocol line in either direction.
const MaxLineBytes = 8 << 20

// Message types.
const (
	TypeTask          = "task"
	TypeModelRequest  = "model_request"
	TypeModelResponse = "model_response"
	TypeToolRequest   = "tool_request"
	TypeToolResponse  = "tool_response"
	TypeLog           = "log"
	TypeResult        = "result"
)

// Event types, named like the reference runtime's.
const (
	EventAgentStart         = "agent_start"
	EventTurnStart          = "turn_start"
	EventMessageStart       = "message_start"
	EventMessageUpdate      = "message_update"
	EventMessageEnd         = "message_end"
	EventToolExecutionStart = "tool_execution_start"
	EventToolExecutionEnd   = "tool_execution_end"
	EventTurnEnd            = "turn_end"
	EventAutoRetryStart     = "auto_retry_start"
	EventAutoRetryEnd       = "auto_retry_end"
	EventAgentEnd           = "agent_end"
)

// Task is what the runtime is asked to do.
type Task struct {
	RunID        string   `json:"runId"`
	Prompt       string   `json:"prompt"`
	Instructions string   `json:"instructions,omitempty"`
	Guidance     string   `json:"guidance,omitempty"`
	Model        string   `json:"model"`
	Tools        []string `json:"tools,omitempty"` // API names, from the Catalog
	MaxTurns     int      `json:"maxTurns,omitempty"`
	MaxTokens    int      `json:"maxTokens,omitempty"` // per model call
}

// ToolSpec describes a tool offered to the model.
type ToolSpec struct {
	Name        string          `json:"name"` // API name, e.g. "vault.search"
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Host        bool            `json:"host,omitempty"` // runs on the worker, not in the sandbox
}

// ToRuntime is a message from the worker to the runtime.
type ToRuntime struct {
	Type     string         `json:"type"`
	ID       string         `json:"id,omitempty"`
	Task     *Task          `json:"task,omitempty"`
	Response *chat.Response `json:"response,omitempty"`
	Output   string         `json:"output,omitempty"`
	IsError  bool           `json:"isError,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// LeadingType returns the type of a message line that begins with it, as
// every line the runtime writes does, so that a reader can route a line
// without decoding it whole. ok is false for any other line, which the reader
// must then decode.
func LeadingType(line []byte) (typ string, ok bool) {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return "", false
	}
	rest := line[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
}

// IsEvent reports whether a line of the runtime of the given type is an
// event, kept in the run's stream, rather than a message the worker acts on
// (a log line, a request, the result).
func IsEvent(typ string) bool {
	switch typ {
	case TypeLog, TypeModelRequest, TypeToolRequest, TypeResult:
		return false
	}
	return true
}

// FromRuntime is a message from the runtime to the worker. Events carry fields
// of their own, which the worker keeps by storing event lines whole.
type FromRuntime struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Request *chat.Request   `json:"request,omitempty"` // model_request
	Tool    string          `json:"tool,omitempty"`    // tool_request: the API name
	Input   json.RawMessage `json:"input,omitempty"`   // tool_request
	Line    string          `json:"line,omitempty"`    // log
	Output  string          `json:"output,omitempty"`  // result
	Error   string          `json:"error,omitempty"`   // result
	Steps   []Step          `json:"steps,omitempty"`   // result
}

// Step is one thing the agent did, kept in the run's details.
type Step struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"` // output | thinking | tool_call | tool_result
	Content    string          `json:"content,omitempty"`
	ToolName   string          `json:"toolName,omitempty"`
	ToolInput  json.RawMessage `json:"toolInput,omitempty"`
	ToolOutput string          `json:"toolOutput,omitempty"`
	IsError    bool            `json:"isError,omitempty"`
	DurationMs int64           `json:"durationMs,omitempty"`
	Timestamp  time.Time       `json:"timestamp"`
}
