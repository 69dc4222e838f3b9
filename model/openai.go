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

// DefaultOpenAIBaseURL is the OpenAI API root.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// GatewayProvider is the name of the gateway provider.
const GatewayProvider = "gateway"

// OpenAIConfig configures a provider that speaks OpenAI Chat Completions:
// OpenAI itself, a compatible server (vLLM, Ollama, LiteLLM), or a gateway.
// Zero values mean the defaults noted on each field.
type OpenAIConfig struct {
	// APIKey is sent as "Authorization: Bearer" (ONESHOT_OPENAI_API_KEY,
	// ONESHOT_GATEWAY_API_KEY). Optional: local servers often need none.
	APIKey string
	// BaseURL is the API root, up to and including /v1
	// (ONESHOT_OPENAI_BASE_URL, ONESHOT_GATEWAY_BASE_URL). Default
	// DefaultOpenAIBaseURL; a gateway has no default.
	BaseURL string
	// HTTPClient sends the requests. Default: a client without a timeout; a
	// call ends with its context.
	HTTPClient *http.Client
	// MaxTokens is sent when a request sets none. Default 0: none sent, the
	// server decides.
	MaxTokens int
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

// OpenAI serves models over Chat Completions (POST {BaseURL}/chat/completions).
type OpenAI struct {
	t         transport
	name      string
	fullID    bool // send "provider/name" as is (gateway), else strip "openai/"
	maxTokens int
	stream    bool
}

// NewOpenAI returns the provider of "openai/..." models; it sends the name
// after "openai/", e.g. "gpt-4.1" or, for an Ollama base URL, "llama3.2".
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	return newOpenAI("openai", false, cmp.Or(cfg.BaseURL, DefaultOpenAIBaseURL), cfg)
}

// NewGateway returns a provider for any "provider/name" id, sent in full to
// an OpenAI-compatible gateway (OpenRouter, Vercel AI Gateway, LiteLLM).
// cfg.BaseURL is required.
func NewGateway(cfg OpenAIConfig) *OpenAI {
	return newOpenAI(GatewayProvider, true, cfg.BaseURL, cfg)
}

func newOpenAI(name string, fullID bool, base string, cfg OpenAIConfig) *OpenAI {
	h := http.Header{}
	if cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	return &OpenAI{
		t: transport{
			provider:  name,
			url:       strings.TrimRight(base, "/") + "/chat/completions",
			client:    cmp.Or(cfg.HTTPClient, http.DefaultClient),
			header:    h,
			requestID: "x-request-id",
			retry:     newRetryPolicy(cfg.MaxRetries, cfg.RetryBaseDelay, cfg.RetryMaxDelay),
		},
		name:      name,
		fullID:    fullID,
		maxTokens: cfg.MaxTokens,
		stream:    !cfg.DisableStreaming,
	}
}

func (o *OpenAI) Name() string { return o.name }

// Complete sends req to POST {BaseURL}/chat/completions, streaming unless
// disabled.
func (o *OpenAI) Complete(ctx context.Context, req Request, hooks Hooks) (*Response, error) {
	body, err := json.Marshal(o.wireRequest(req))
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", o.name, err)
	}
	return withRetries(ctx, o.name, o.t.retry, hooks, func(ctx context.Context, out *output) (*Response, error) {
		resp, err := o.t.post(ctx, body, o.stream)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if o.stream && isEventStream(resp) {
			return readOpenAIStream(o.name, resp, out)
		}
		var c openaiCompletion
		if err := readJSON(resp, out, &c); err != nil {
			return nil, err
		}
		if c.Error != nil {
			return nil, c.Error.apiError(o.name, 0)
		}
		if len(c.Choices) == 0 {
			return nil, fmt.Errorf("%w: no choices", ErrMalformedResponse)
		}
		m := c.Choices[0].Message
		return openaiResponse(cmp.Or(m.ReasoningContent, m.Reasoning), m.text(), m.ToolCalls, c.Choices[0].FinishReason, c.Usage)
	})
}

// Wire format of Chat Completions.
type (
	openaiRequest struct {
		Model               string          `json:"model"`
		Messages            []openaiMessage `json:"messages"`
		Tools               []openaiTool    `json:"tools,omitempty"`
		MaxTokens           int             `json:"max_tokens,omitempty"`
		MaxCompletionTokens int             `json:"max_completion_tokens,omitempty"`
		Stream              bool            `json:"stream,omitempty"`
		StreamOptions       *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options,omitempty"`
	}
	openaiMessage struct {
		Role       string           `json:"role,omitempty"`
		Content    *string          `json:"content"` // null for an assistant message with only tool calls
		ToolCalls  []openaiToolCall `json:"tool_calls,omitempty"`
		ToolCallID string           `json:"tool_call_id,omitempty"`
		// Reasoning text, in answers of vLLM, DeepSeek (reasoning_content)
		// and OpenRouter (reasoning); never sent.
		ReasoningContent string `json:"reasoning_content,omitempty"`
		Reasoning        string `json:"reasoning,omitempty"`
	}
	openaiToolCall struct {
		Index    *int   `json:"index,omitempty"` // in stream deltas only
		ID       string `json:"id,omitempty"`
		Type     string `json:"type,omitempty"`
		Function struct {
			Name      string `json:"name,omitempty"`
			Arguments string `json:"arguments"` // a JSON object, as a string
		} `json:"function"`
	}
	openaiTool struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	// openaiCompletion is a whole answer or one chunk of a stream.
	openaiCompletion struct {
		Choices []struct {
			Message      openaiMessage `json:"message"`
			Delta        openaiMessage `json:"delta"`
			FinishReason *string       `json:"finish_reason"`
		} `json:"choices"`
		Usage *openaiUsage `json:"usage"`
		Error *wireError   `json:"error"` // some servers report errors in-band
	}
	openaiUsage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	}
)

func (m *openaiMessage) text() string {
	if m.Content == nil {
		return ""
	}
	return *m.Content
}

func (o *OpenAI) wireRequest(req Request) openaiRequest {
	w := openaiRequest{Model: req.Model, Messages: []openaiMessage{}, Stream: o.stream}
	if !o.fullID {
		w.Model = strings.TrimPrefix(req.Model, o.name+"/")
	}
	// OpenAI's newer models refuse max_tokens; gateways and most compatible
	// servers know max_tokens best.
	if n := cmp.Or(req.MaxTokens, o.maxTokens); n > 0 {
		if o.fullID {
			w.MaxTokens = n
		} else {
			w.MaxCompletionTokens = n
		}
	}
	if o.stream {
		w.StreamOptions = &struct {
			IncludeUsage bool `json:"include_usage"`
		}{true}
	}
	str := func(s string) *string { return &s }
	if req.System != "" {
		w.Messages = append(w.Messages, openaiMessage{Role: "system", Content: str(req.System)})
	}
	for _, t := range req.Tools {
		var ot openaiTool
		ot.Type, ot.Function.Name, ot.Function.Description = "function", t.Name, t.Description
		ot.Function.Parameters = orJSON(t.Schema, emptySchema)
		w.Tools = append(w.Tools, ot)
	}
	for _, m := range req.Messages {
		var texts []string
		var calls []openaiToolCall
		for _, p := range m.Content {
			switch p.Type {
			case PartText:
				if p.Text != "" {
					texts = append(texts, p.Text)
				}
			case PartToolCall:
				var c openaiToolCall
				c.ID, c.Type, c.Function.Name = p.ToolCallID, "function", p.ToolName
				c.Function.Arguments = string(orJSON(p.Input, json.RawMessage("{}")))
				calls = append(calls, c)
			case PartToolResult:
				// Tool answers must directly follow the assistant's calls.
				w.Messages = append(w.Messages, openaiMessage{Role: "tool", ToolCallID: p.ToolCallID, Content: str(p.Text)})
			}
		}
		text := strings.Join(texts, "\n\n")
		switch {
		case m.Role == RoleAssistant && len(calls) > 0:
			msg := openaiMessage{Role: RoleAssistant, ToolCalls: calls}
			if text != "" {
				msg.Content = str(text)
			}
			w.Messages = append(w.Messages, msg)
		case text != "":
			w.Messages = append(w.Messages, openaiMessage{Role: m.Role, Content: str(text)})
		}
	}
	return w
}

// openaiResponse maps an answer, whole or assembled from a stream, to ours.
func openaiResponse(reasoning, text string, calls []openaiToolCall, finish *string, usage *openaiUsage) (*Response, error) {
	resp := &Response{StopReason: StopEndTurn}
	if finish != nil {
		switch *finish {
		case "tool_calls", "function_call":
			resp.StopReason = StopToolUse
		case "length":
			resp.StopReason = StopMaxTokens
		}
	}
	if usage != nil {
		resp.Usage = Usage{InputTokens: usage.PromptTokens, OutputTokens: usage.CompletionTokens}
	}
	if reasoning != "" {
		resp.Content = append(resp.Content, Part{Type: PartThinking, Text: reasoning})
	}
	if text != "" {
		resp.Content = append(resp.Content, Part{Type: PartText, Text: text})
	}
	for _, c := range calls {
		input, err := compactJSON(c.Function.Arguments)
		if err != nil {
			if resp.StopReason == StopMaxTokens {
				continue // cut off mid-call: the call is incomplete, drop it
			}
			return nil, fmt.Errorf("%w: tool call %s (%s) arguments: %w", ErrMalformedResponse, c.ID, c.Function.Name, err)
		}
		resp.Content = append(resp.Content, Part{Type: PartToolCall, ToolCallID: c.ID, ToolName: c.Function.Name, Input: input})
	}
	resp.StopReason = withToolStop(resp)
	return resp, nil
}
