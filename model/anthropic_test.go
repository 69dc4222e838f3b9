package model

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newTestAnthropic(url string, stream bool) *Anthropic {
	return NewAnthropic(AnthropicConfig{
		APIKey:           "sk-ant-test",
		BaseURL:          url,
		DisableStreaming: !stream,
		RetryBaseDelay:   time.Millisecond,
		RetryMaxDelay:    5 * time.Millisecond,
	})
}

// conversation is a tool round trip: the user asks, the assistant calls a
// tool, the tool answers.
func conversation(model string) Request {
	return Request{
		Model:  model,
		System: "You are a weather bot.",
		Tools: []Tool{{
			Name:        "get_weather",
			Description: "Get the current weather in a given location",
			Schema:      json.RawMessage(`{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}`),
		}},
		Messages: []Message{
			{Role: RoleUser, Content: []Part{{Type: PartText, Text: "What's the weather like in San Francisco?"}}},
			{Role: RoleAssistant, Content: []Part{
				{Type: PartThinking, Text: "unsigned thinking is not sent back"},
				{Type: PartText, Text: "Let me check."},
				{Type: PartToolCall, ToolCallID: "toolu_01A09q90qw90lq917835lq9", ToolName: "get_weather", Input: json.RawMessage(`{"location":"San Francisco, CA"}`)},
			}},
			{Role: RoleUser, Content: []Part{
				{Type: PartToolResult, ToolCallID: "toolu_01A09q90qw90lq917835lq9", Text: "15 degrees", IsError: false},
				{Type: PartText, Text: ""}, // empty text blocks are refused by the API
			}},
		},
	}
}

func TestAnthropicRequest(t *testing.T) {
	for _, stream := range []bool{false, true} {
		srv := newFakeServer(t, replyFixture(t, "anthropic/message.json"))
		resp, err := newTestAnthropic(srv.URL, stream).Complete(context.Background(), conversation(DefaultModel), Hooks{})
		require.NoError(t, err)
		require.Equal(t, "Hi! My name is Claude.", partsText(resp.Content, PartText), "a JSON answer to a stream request is read whole")

		got := srv.requests()
		require.Len(t, got, 1)
		require.Equal(t, "/v1/messages", got[0].Path)
		require.Equal(t, "sk-ant-test", got[0].Header.Get("x-api-key"))
		require.Equal(t, "2023-06-01", got[0].Header.Get("anthropic-version"))
		require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
		want := `{
			"model": "claude-sonnet-4-6",
			"max_tokens": 8192,
			"system": "You are a weather bot.",
			"tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
				"input_schema": {"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}],
			"messages": [
				{"role": "user", "content": [{"type": "text", "text": "What's the weather like in San Francisco?"}]},
				{"role": "assistant", "content": [
					{"type": "text", "text": "Let me check."},
					{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}}]},
				{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}]}
			]` + map[bool]string{true: `, "stream": true}`, false: `}`}[stream]
		require.JSONEq(t, want, got[0].Body)
	}
}

func TestAnthropicThinkingRequest(t *testing.T) {
	srv := newFakeServer(t, replyFixture(t, "anthropic/thinking.sse"))
	a := NewAnthropic(AnthropicConfig{BaseURL: srv.URL + "/v1/", ThinkingBudget: 2048, MaxTokens: 1024})
	req := Request{Model: "anthropic/claude-sonnet-4-5", Messages: []Message{
		{Role: RoleUser, Content: []Part{{Type: PartText, Text: "GCD of 1071 and 462?"}}},
		{Role: RoleAssistant, Content: []Part{{Type: PartThinking, Text: "Euclid.", Signature: "sig"}, {Type: PartText, Text: "21"}}},
		{Role: RoleUser, Content: []Part{{Type: PartText, Text: "Sure?"}}},
	}}
	_, err := a.Complete(context.Background(), req, Hooks{})
	require.NoError(t, err)
	got := srv.requests()[0]
	require.Equal(t, "/v1/messages", got.Path, "a base URL ending in /v1 is not doubled")
	require.Empty(t, got.Header.Get("x-api-key"))
	require.JSONEq(t, `{
		"model": "claude-sonnet-4-5", "max_tokens": 3072, "stream": true,
		"thinking": {"type": "enabled", "budget_tokens": 2048},
		"messages": [
			{"role": "user", "content": [{"type": "text", "text": "GCD of 1071 and 462?"}]},
			{"role": "assistant", "content": [{"type": "thinking", "thinking": "Euclid.", "signature": "sig"}, {"type": "text", "text": "21"}]},
			{"role": "user", "content": [{"type": "text", "text": "Sure?"}]}
		]}`, got.Body)
}

func TestAnthropicAnswers(t *testing.T) {
	hello := &Response{Content: []Part{{Type: PartText, Text: "Hello!"}}, StopReason: StopEndTurn, Usage: Usage{InputTokens: 25, OutputTokens: 15}}
	toolUse := &Response{
		Content: []Part{
			{Type: PartText, Text: "Okay, let's check the weather for San Francisco, CA:"},
			{Type: PartToolCall, ToolCallID: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", ToolName: "get_weather", Input: json.RawMessage(`{"location":"San Francisco, CA","unit":"fahrenheit"}`)},
		},
		StopReason: StopToolUse,
		Usage:      Usage{InputTokens: 472, OutputTokens: 89},
	}
	tests := []struct {
		name       string
		fixture    string
		stream     bool
		want       *Response
		wantDeltas []Delta
	}{
		{name: "plain", fixture: "anthropic/message.json", want: &Response{
			Content: []Part{{Type: PartText, Text: "Hi! My name is Claude."}}, StopReason: StopEndTurn, Usage: Usage{InputTokens: 2095, OutputTokens: 503},
		}},
		{name: "hello whole", fixture: "anthropic/hello.json", want: hello},
		{name: "hello streamed", fixture: "anthropic/hello.sse", stream: true, want: hello,
			wantDeltas: []Delta{{Text: "Hello"}, {Text: "!"}}},
		{name: "tool use whole", fixture: "anthropic/tool_use.json", want: toolUse},
		{name: "tool use streamed", fixture: "anthropic/tool_use.sse", stream: true, want: toolUse},
		{name: "thinking streamed", fixture: "anthropic/thinking.sse", stream: true, want: &Response{
			Content: []Part{
				{Type: PartThinking, Text: "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n1071 = 2 × 462 + 147\n462 = 3 × 147 + 21\n147 = 7 × 21 + 0\n\nSo GCD(1071, 462) = 21",
					Signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."},
				{Type: PartText, Text: "The greatest common divisor of 1071 and 462 is **21**."},
			},
			StopReason: StopEndTurn,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, replyFixture(t, tt.fixture))
			var rec recorder
			got, err := newTestAnthropic(srv.URL, tt.stream).Complete(context.Background(), conversation(DefaultModel), rec.hooks())
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			if tt.stream {
				require.Equal(t, partsText(got.Content, PartText), rec.text(), "the text deltas spell the answer, in order")
				require.Equal(t, partsText(got.Content, PartThinking), rec.thinking())
			}
			if tt.wantDeltas != nil {
				require.Equal(t, tt.wantDeltas, rec.deltas)
			}
		})
	}
}

func TestAnthropicMaxTokensDropsCutToolCall(t *testing.T) {
	stream := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Writing.\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"write\",\"input\":{}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\": \\\"a.t\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":20}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	srv := newFakeServer(t, replyStream(stream))
	got, err := newTestAnthropic(srv.URL, true).Complete(context.Background(), conversation(DefaultModel), Hooks{})
	require.NoError(t, err)
	require.Equal(t, &Response{
		Content:    []Part{{Type: PartText, Text: "Writing."}},
		StopReason: StopMaxTokens,
		Usage:      Usage{InputTokens: 10, OutputTokens: 20},
	}, got, "a tool call cut by max_tokens is dropped")

	// The same cut without max_tokens is a broken answer.
	srv = newFakeServer(t, replyStream(strings.Replace(stream, `"max_tokens"`, `"tool_use"`, 1)))
	_, err = newTestAnthropic(srv.URL, true).Complete(context.Background(), conversation(DefaultModel), Hooks{})
	require.ErrorIs(t, err, ErrMalformedResponse)
}

func TestAnthropicModelName(t *testing.T) {
	tests := []struct{ name, id, want string }{
		{name: "gateway style", id: "anthropic/claude-sonnet-4.6", want: "claude-sonnet-4-6"},
		{name: "api style", id: "anthropic/claude-sonnet-4-5-20250929", want: "claude-sonnet-4-5-20250929"},
		{name: "no prefix", id: "claude-3-5-haiku-latest", want: "claude-3-5-haiku-latest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, AnthropicModelName(tt.id)) })
	}
}
