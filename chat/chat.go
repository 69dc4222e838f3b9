// Package chat is the vocabulary of a model conversation: messages and their
// parts, tools, requests and responses. The runtime in the sandbox and the
// model providers on the worker share it; it depends on the standard library
// only, so that the runtime binary stays small and starts fast.
package chat

import "encoding/json"

// Part is one piece of a message's content.
type Part struct {
	Type       string          `json:"type"` // text | thinking | tool_call | tool_result
	Text       string          `json:"text,omitempty"`
	ToolCallID string          `json:"toolCallId,omitempty"`
	ToolName   string          `json:"toolName,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"` // tool_call arguments, a JSON object
	IsError    bool            `json:"isError,omitempty"`
	// Signature is the provider's seal on a thinking part (Anthropic); it must
	// travel back unchanged with the part, or the part is dropped.
	Signature string `json:"signature,omitempty"`
}

// Part types.
const (
	PartText       = "text"
	PartThinking   = "thinking"
	PartToolCall   = "tool_call"
	PartToolResult = "tool_result"
)

// Message roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of the conversation. Tool results travel in user messages.
type Message struct {
	Role    string `json:"role"`
	Content []Part `json:"content"`
}

// Tool is a tool offered to the model. Names are wire-safe ([a-zA-Z0-9_-]).
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"` // JSON schema of the input object
}

// Request is one model call.
type Request struct {
	Model     string    `json:"model"` // full id, "provider/name"
	System    string    `json:"system,omitempty"`
	Messages  []Message `json:"messages"`
	Tools     []Tool    `json:"tools,omitempty"`
	MaxTokens int       `json:"maxTokens,omitempty"`
}

// Usage counts tokens of one call.
type Usage struct {
	InputTokens  int `json:"inputTokens"`
	OutputTokens int `json:"outputTokens"`
}

// Stop reasons, normalized across providers. A response that holds tool_call
// parts stops with StopToolUse unless it ran out of tokens.
const (
	StopEndTurn   = "end_turn"   // the answer is complete (also stop sequences, refusals)
	StopToolUse   = "tool_use"   // the model waits for the results of its tool calls
	StopMaxTokens = "max_tokens" // the answer was cut at Request.MaxTokens
)

// Response is a model's answer to one Request.
type Response struct {
	Content    []Part `json:"content"`
	StopReason string `json:"stopReason"`
	Usage      Usage  `json:"usage"`
}

// Delta is a piece of streamed output, for live events. Deltas arrive in order;
// their concatenation equals the text and thinking parts of the Response.
type Delta struct {
	Text     string `json:"text,omitempty"`
	Thinking string `json:"thinking,omitempty"`
}
