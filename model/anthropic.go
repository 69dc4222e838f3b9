package model

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Anthropic defaults.
const (
	DefaultAnthropicBaseURL   = "https://api.anthropic.com"
	DefaultAnthropicMaxTokens = 8192
	anthropicVersion          = "2023-06-01"
)

// AnthropicConfig configures the Anthropic provider. Zero values mean the
// defaults noted on each field.
type AnthropicConfig struct {
	// APIKey is sent as x-api-key (ONESHOT_ANTHROPIC_API_KEY).
	APIKey string
	// BaseURL is the API root, without /v1 (ONESHOT_ANTHROPIC_BASE_URL).
	// Default DefaultAnthropicBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Default: a client without a timeout; a
	// call ends with its context.
	HTTPClient *http.Client
	// MaxTokens is sent when a request sets none; the API requires a value.
	// Default DefaultAnthropicMaxTokens (8192).
	MaxTokens int
	// ThinkingBudget turns on extended thinking with this many tokens
	// (at least 1024). Default 0: off.
	ThinkingBudget int
	// DisableStreaming asks for whole answers. Default false: stream.
	DisableStreaming bool
	// MaxRetries bounds retries of one call. Default DefaultMaxRetries (4);
	// negative: no retry.
	MaxRetries int
	// RetryBaseDelay is the first backoff, doubled on each retry. Default
	// DefaultRetryBaseDelay (500ms).
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps one backoff, Retry-After included. Default
	// DefaultRetryMaxDelay (30s).
	RetryMaxDelay time.Duration
}

// Anthropic serves "anthropic/..." models through the native Messages API.
type Anthropic struct {
	t         transport
	maxTokens int
	thinking  int
	stream    bool
}

// NewAnthropic returns an Anthropic provider.
func NewAnthropic(cfg AnthropicConfig) *Anthropic {
	base := strings.TrimSuffix(strings.TrimRight(cmp.Or(cfg.BaseURL, DefaultAnthropicBaseURL), "/"), "/v1")
	h := http.Header{}
	h.Set("anthropic-version", anthropicVersion)
	if cfg.APIKey != "" {
		h.Set("x-api-key", cfg.APIKey)
	}
	return &Anthropic{
		t: transport{
			provider:  "anthropic",
			url:       base + "/v1/messages",
			client:    cmp.Or(cfg.HTTPClient, http.DefaultClient),
			header:    h,
			requestID: "request-id",
			retry:     newRetryPolicy(cfg.MaxRetries, cfg.RetryBaseDelay, cfg.RetryMaxDelay),
		},
		maxTokens: cmp.Or(cfg.MaxTokens, DefaultAnthropicMaxTokens),
		thinking:  cfg.ThinkingBudget,
		stream:    !cfg.DisableStreaming,
	}
}

func (a *Anthropic) Name() string { return "anthropic" }

// Complete sends req to POST /v1/messages, streaming unless disabled.
func (a *Anthropic) Complete(ctx context.Context, req Request, hooks Hooks) (*Response, error) {
	body, err := json.Marshal(a.wireRequest(req))
	if err != nil {
		return nil, fmt.Errorf("anthropic: encode request: %w", err)
	}
	return withRetries(ctx, a.t.provider, a.t.retry, hooks, func(ctx context.Context, out *output) (*Response, error) {
		resp, err := a.t.post(ctx, body, a.stream)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if a.stream && isEventStream(resp) {
			return readAnthropicStream(resp, out)
		}
		var m anthropicMessage
		if err := readJSON(resp, out, &m); err != nil {
			return nil, err
		}
		return m.response()
	})
}

// AnthropicModelName is the Messages API name of a model id: the provider
// prefix goes, and dots become dashes, so that the gateway-style
// "anthropic/claude-sonnet-4.6" names the API's "claude-sonnet-4-6".
func AnthropicModelName(id string) string {
	return strings.ReplaceAll(strings.TrimPrefix(id, "anthropic/"), ".", "-")
}

// Wire format of the Messages API.
type (
	anthropicRequest struct {
		Model     string             `json:"model"`
		MaxTokens int                `json:"max_tokens"`
		System    string             `json:"system,omitempty"`
		Messages  []anthropicMessage `json:"messages"`
		Tools     []anthropicTool    `json:"tools,omitempty"`
		Thinking  *anthropicThinking `json:"thinking,omitempty"`
		Stream    bool               `json:"stream,omitempty"`
	}
	// anthropicMessage is a request message, and the response message.
	anthropicMessage struct {
		Role       string           `json:"role"`
		Content    []anthropicBlock `json:"content"`
		StopReason string           `json:"stop_reason,omitempty"`
		Usage      *anthropicUsage  `json:"usage,omitempty"`
	}
	anthropicBlock struct {
		Type      string          `json:"type"` // text | thinking | tool_use | tool_result
		Text      string          `json:"text,omitempty"`
		Thinking  string          `json:"thinking,omitempty"`
		Signature string          `json:"signature,omitempty"`
		ID        string          `json:"id,omitempty"`
		Name      string          `json:"name,omitempty"`
		Input     json.RawMessage `json:"input,omitempty"`
		ToolUseID string          `json:"tool_use_id,omitempty"`
		Content   string          `json:"content,omitempty"`
		IsError   bool            `json:"is_error,omitempty"`
	}
	anthropicTool struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"input_schema"`
	}
	anthropicThinking struct {
		Type         string `json:"type"`
		BudgetTokens int    `json:"budget_tokens"`
	}
	anthropicUsage struct {
		InputTokens              int `json:"input_tokens"`
		OutputTokens             int `json:"output_tokens"`
		CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	}
)

var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// orJSON is cmp.Or for raw JSON, which is not comparable.
func orJSON(v, def json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return def
	}
	return v
}

func (a *Anthropic) wireRequest(req Request) anthropicRequest {
	w := anthropicRequest{
		Model:     AnthropicModelName(req.Model),
		MaxTokens: cmp.Or(req.MaxTokens, a.maxTokens),
		System:    req.System,
		Messages:  []anthropicMessage{},
		Stream:    a.stream,
	}
	if a.thinking > 0 {
		w.Thinking = &anthropicThinking{Type: "enabled", BudgetTokens: a.thinking}
		if w.MaxTokens <= a.thinking { // the API wants room for the answer too
			w.MaxTokens = a.thinking + a.maxTokens
		}
	}
	for _, t := range req.Tools {
		w.Tools = append(w.Tools, anthropicTool{Name: t.Name, Description: t.Description, InputSchema: orJSON(t.Schema, emptySchema)})
	}
	for _, m := range req.Messages {
		var blocks []anthropicBlock
		for _, p := range m.Content {
			switch p.Type {
			case PartText:
				if p.Text != "" { // the API refuses empty text blocks
					blocks = append(blocks, anthropicBlock{Type: "text", Text: p.Text})
				}
			case PartThinking:
				// Only signed thinking may go back, and only while thinking is on.
				if a.thinking > 0 && p.Signature != "" {
					blocks = append(blocks, anthropicBlock{Type: "thinking", Thinking: p.Text, Signature: p.Signature})
				}
			case PartToolCall:
				blocks = append(blocks, anthropicBlock{Type: "tool_use", ID: p.ToolCallID, Name: p.ToolName, Input: orJSON(p.Input, json.RawMessage("{}"))})
			case PartToolResult:
				blocks = append(blocks, anthropicBlock{Type: "tool_result", ToolUseID: p.ToolCallID, Content: p.Text, IsError: p.IsError})
			}
		}
		if len(blocks) > 0 {
			w.Messages = append(w.Messages, anthropicMessage{Role: m.Role, Content: blocks})
		}
	}
	return w
}

// response maps the API's answer to ours. Streamed answers are assembled
// into the same anthropicMessage first, so both paths give equal Responses.
func (m *anthropicMessage) response() (*Response, error) {
	resp := &Response{StopReason: anthropicStop(m.StopReason)}
	if u := m.Usage; u != nil {
		resp.Usage = Usage{InputTokens: u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens, OutputTokens: u.OutputTokens}
	}
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			if b.Text != "" {
				resp.Content = append(resp.Content, Part{Type: PartText, Text: b.Text})
			}
		case "thinking":
			resp.Content = append(resp.Content, Part{Type: PartThinking, Text: b.Thinking, Signature: b.Signature})
		case "tool_use":
			input, err := compactJSON(string(b.Input))
			if err != nil {
				if resp.StopReason == StopMaxTokens {
					continue // cut off mid-call: the call is incomplete, drop it
				}
				return nil, fmt.Errorf("%w: tool_use %s input: %w", ErrMalformedResponse, b.ID, err)
			}
			resp.Content = append(resp.Content, Part{Type: PartToolCall, ToolCallID: b.ID, ToolName: b.Name, Input: input})
		}
	}
	resp.StopReason = withToolStop(resp)
	return resp, nil
}

func anthropicStop(s string) string {
	switch s {
	case "tool_use":
		return StopToolUse
	case "max_tokens", "model_context_window_exceeded":
		return StopMaxTokens
	default: // end_turn, stop_sequence, pause_turn, refusal
		return StopEndTurn
	}
}

// withToolStop makes a response that calls tools stop with StopToolUse, as
// some OpenAI-compatible servers say "stop" there.
func withToolStop(r *Response) string {
	if r.StopReason == StopMaxTokens {
		return r.StopReason
	}
	for _, p := range r.Content {
		if p.Type == PartToolCall {
			return StopToolUse
		}
	}
	return r.StopReason
}
