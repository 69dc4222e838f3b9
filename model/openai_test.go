package model

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testOpenAIConfig(url string, stream bool) OpenAIConfig {
	return OpenAIConfig{
		APIKey:           "sk-test",
		BaseURL:          url,
		DisableStreaming: !stream,
		RetryBaseDelay:   time.Millisecond,
		RetryMaxDelay:    5 * time.Millisecond,
	}
}

func TestOpenAIRequest(t *testing.T) {
	wantMessages := `[
		{"role": "system", "content": "You are a weather bot."},
		{"role": "user", "content": "What's the weather like in San Francisco?"},
		{"role": "assistant", "content": "Let me check.", "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
			"function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\"}"}}]},
		{"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}
	]`
	wantTools := `[{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a given location",
		"parameters": {"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}]`
	tests := []struct {
		name     string
		gateway  bool
		stream   bool
		model    string
		want     string
		wantAuth string
	}{
		{name: "openai whole", model: "openai/gpt-4.1", wantAuth: "Bearer sk-test",
			want: `{"model": "gpt-4.1", "messages": ` + wantMessages + `, "tools": ` + wantTools + `}`},
		{name: "openai streamed", model: "openai/gpt-4.1", stream: true, wantAuth: "Bearer sk-test",
			want: `{"model": "gpt-4.1", "messages": ` + wantMessages + `, "tools": ` + wantTools + `, "stream": true, "stream_options": {"include_usage": true}}`},
		{name: "gateway keeps the full id", gateway: true, model: "anthropic/claude-sonnet-4.6", wantAuth: "Bearer sk-test",
			want: `{"model": "anthropic/claude-sonnet-4.6", "messages": ` + wantMessages + `, "tools": ` + wantTools + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, replyFixture(t, "openai/chat.json"))
			cfg := testOpenAIConfig(srv.URL+"/v1", tt.stream)
			p := NewOpenAI(cfg)
			if tt.gateway {
				p = NewGateway(cfg)
			}
			resp, err := p.Complete(context.Background(), conversation(tt.model), Hooks{})
			require.NoError(t, err)
			require.Equal(t, "Hello! How can I assist you today?", partsText(resp.Content, PartText))
			got := srv.requests()
			require.Len(t, got, 1)
			require.Equal(t, "/v1/chat/completions", got[0].Path)
			require.Equal(t, tt.wantAuth, got[0].Header.Get("Authorization"))
			require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
			require.JSONEq(t, tt.want, got[0].Body)
		})
	}
}

func TestOpenAIRequestDetails(t *testing.T) {
	srv := newFakeServer(t, replyFixture(t, "openai/chat.json"))
	req := Request{Model: "openai/llama3.2", MaxTokens: 100, Messages: []Message{
		{Role: RoleUser, Content: []Part{{Type: PartText, Text: "Run it."}}},
		{Role: RoleAssistant, Content: []Part{{Type: PartToolCall, ToolCallID: "call_1", ToolName: "bash"}, {Type: PartToolCall, ToolCallID: "call_2", ToolName: "ls", Input: json.RawMessage(`{"path":"."}`)}}},
		{Role: RoleUser, Content: []Part{{Type: PartToolResult, ToolCallID: "call_1", Text: "boom", IsError: true}, {Type: PartToolResult, ToolCallID: "call_2", Text: "a.txt"}, {Type: PartText, Text: "Go on."}}},
	}}
	_, err := NewOpenAI(OpenAIConfig{BaseURL: srv.URL + "/v1/", DisableStreaming: true}).Complete(context.Background(), req, Hooks{})
	require.NoError(t, err)
	got := srv.requests()[0]
	require.Empty(t, got.Header.Get("Authorization"), "no key, no header: local servers need none")
	require.JSONEq(t, `{"model": "llama3.2", "max_completion_tokens": 100, "messages": [
		{"role": "user", "content": "Run it."},
		{"role": "assistant", "content": null, "tool_calls": [
			{"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{}"}},
			{"id": "call_2", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}}]},
		{"role": "tool", "tool_call_id": "call_1", "content": "boom"},
		{"role": "tool", "tool_call_id": "call_2", "content": "a.txt"},
		{"role": "user", "content": "Go on."}
	]}`, got.Body)

	srv = newFakeServer(t, replyFixture(t, "openai/chat.json"))
	_, err = NewGateway(OpenAIConfig{BaseURL: srv.URL, MaxTokens: 50, DisableStreaming: true}).Complete(context.Background(), Request{Model: "meta/llama-4"}, Hooks{})
	require.NoError(t, err)
	require.JSONEq(t, `{"model": "meta/llama-4", "max_tokens": 50, "messages": []}`, srv.requests()[0].Body, "gateways get max_tokens")
}

func TestOpenAIAnswers(t *testing.T) {
	chat := &Response{Content: []Part{{Type: PartText, Text: "Hello! How can I assist you today?"}}, StopReason: StopEndTurn, Usage: Usage{InputTokens: 19, OutputTokens: 10}}
	tokyo := &Response{
		Content:    []Part{{Type: PartToolCall, ToolCallID: "call_PieqNSej6kM9hgYbcQdbZSaC", ToolName: "get_weather", Input: json.RawMessage(`{"location":"Tokyo"}`)}},
		StopReason: StopToolUse,
		Usage:      Usage{InputTokens: 67, OutputTokens: 31},
	}
	tests := []struct {
		name       string
		fixture    string
		stream     bool
		want       *Response
		wantDeltas []Delta
	}{
		{name: "plain whole", fixture: "openai/chat.json", want: chat},
		{name: "plain streamed", fixture: "openai/chat.sse", stream: true, want: chat,
			wantDeltas: []Delta{{Text: "Hello"}, {Text: "!"}, {Text: " How can I assist you today?"}}},
		{name: "tool call whole", fixture: "openai/tool_calls.json", want: &Response{
			Content:    []Part{{Type: PartToolCall, ToolCallID: "call_abc123", ToolName: "get_current_weather", Input: json.RawMessage(`{"location":"Boston, MA"}`)}},
			StopReason: StopToolUse,
			Usage:      Usage{InputTokens: 82, OutputTokens: 17},
		}},
		{name: "tool call whole, recorded", fixture: "openai/tool_calls_tokyo.json", want: tokyo},
		{name: "tool call streamed, recorded", fixture: "openai/tool_calls.sse", stream: true, want: tokyo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, replyFixture(t, tt.fixture))
			var rec recorder
			got, err := NewOpenAI(testOpenAIConfig(srv.URL, tt.stream)).Complete(context.Background(), conversation("openai/gpt-4o-mini"), rec.hooks())
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			if tt.stream {
				require.Equal(t, partsText(got.Content, PartText), rec.text(), "the text deltas spell the answer, in order")
			}
			if tt.wantDeltas != nil {
				require.Equal(t, tt.wantDeltas, rec.deltas)
			}
		})
	}
}

// Compatible servers differ from OpenAI in small ways; these are the ones
// seen in vLLM, Ollama and OpenRouter streams.
func TestOpenAICompatibleStreams(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   *Response
	}{
		{
			name: "reasoning_content, no [DONE], finish stop with tool calls, no index",
			stream: `: OPENROUTER PROCESSING` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Two files."}}]}` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_a","type":"function","function":{"name":"read","arguments":"{\"path\":\"a\"}"}}]}}]}` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_b","type":"function","function":{"name":"read","arguments":"{\"path\":\"b\"}"}}]}}]}` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}` + "\n\n",
			want: &Response{
				Content: []Part{
					{Type: PartThinking, Text: "Two files."},
					{Type: PartToolCall, ToolCallID: "call_a", ToolName: "read", Input: json.RawMessage(`{"path":"a"}`)},
					{Type: PartToolCall, ToolCallID: "call_b", ToolName: "read", Input: json.RawMessage(`{"path":"b"}`)},
				},
				StopReason: StopToolUse,
				Usage:      Usage{InputTokens: 5, OutputTokens: 7},
			},
		},
		{
			name: "length",
			stream: `data: {"choices":[{"index":0,"delta":{"content":"Once upon"}}]}` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}` + "\n\n" + "data: [DONE]\n\n",
			want: &Response{Content: []Part{{Type: PartText, Text: "Once upon"}}, StopReason: StopMaxTokens},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, replyStream(tt.stream))
			got, err := NewOpenAI(testOpenAIConfig(srv.URL, true)).Complete(context.Background(), conversation("openai/qwen3"), Hooks{})
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
