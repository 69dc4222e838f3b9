package model

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runAgent drives a model the way the runtime does: it answers every tool
// call with tool(call) and asks again, until the model stops calling tools
// or maxTurns pass.
func runAgent(t *testing.T, model, prompt string, tool func(Part) string, maxTurns int) ([]Message, *Response) {
	t.Helper()
	msgs := []Message{{Role: RoleUser, Content: []Part{{Type: PartText, Text: prompt}}}}
	for range maxTurns {
		var rec recorder
		resp, err := Builtin{}.Complete(context.Background(), Request{Model: model, Messages: msgs}, rec.hooks())
		require.NoError(t, err)
		require.Equal(t, partsText(resp.Content, PartText), rec.text(), "the text is streamed")
		require.Positive(t, resp.Usage.InputTokens)
		msgs = append(msgs, Message{Role: RoleAssistant, Content: resp.Content})
		if resp.StopReason != StopToolUse {
			return msgs, resp
		}
		var results []Part
		for _, p := range resp.Content {
			if p.Type == PartToolCall {
				results = append(results, Part{Type: PartToolResult, ToolCallID: p.ToolCallID, Text: tool(p)})
			}
		}
		msgs = append(msgs, Message{Role: RoleUser, Content: results})
	}
	return msgs, nil
}

func TestScriptPlaysToolRoundTrip(t *testing.T) {
	prompt := `{"script":[{"tool":"bash","input":{"command":"echo hi > a.txt"}},{"tool":"read","input":{"path":"a.txt"}},{"text":"done: {{last}}"}],"loop":false}`
	files := map[string]string{}
	var calls []string
	tool := func(p Part) string {
		calls = append(calls, p.ToolCallID+" "+p.ToolName+" "+string(p.Input))
		var in struct{ Command, Path string }
		require.NoError(t, json.Unmarshal(p.Input, &in))
		switch p.ToolName {
		case "bash":
			files["a.txt"] = "hi\n"
			return ""
		case "read":
			return files[in.Path]
		}
		return "unknown tool"
	}
	msgs, final := runAgent(t, BuiltinScript, prompt, tool, 10)
	require.NotNil(t, final)
	require.Equal(t, []string{
		`script_1_1 bash {"command":"echo hi > a.txt"}`,
		`script_2_1 read {"path":"a.txt"}`,
	}, calls)
	require.Equal(t, []Part{{Type: PartText, Text: "done: hi\n"}}, final.Content)
	require.Equal(t, StopEndTurn, final.StopReason)
	require.Len(t, msgs, 6, "prompt, 3 answers, 2 tool results")
	require.Positive(t, final.Usage.OutputTokens)
}

func TestScriptLoops(t *testing.T) {
	prompt := `{"script":[{"tool":"bash","input":{"command":"true"}}],"loop":true}`
	msgs, final := runAgent(t, BuiltinScript, prompt, func(Part) string { return "ok" }, 25)
	require.Nil(t, final, "a looping script never stops by itself")
	require.Len(t, msgs, 51)
}

func TestScriptTurns(t *testing.T) {
	user := func(s string) Message { return Message{Role: RoleUser, Content: []Part{{Type: PartText, Text: s}}} }
	turn := func(result string) []Message {
		return []Message{
			{Role: RoleAssistant, Content: []Part{{Type: PartToolCall, ToolCallID: "x", ToolName: "t", Input: json.RawMessage(`{}`)}}},
			{Role: RoleUser, Content: []Part{{Type: PartToolResult, ToolCallID: "x", Text: result}}},
		}
	}
	call := func(id, name, input string) Part {
		return Part{Type: PartToolCall, ToolCallID: id, ToolName: name, Input: json.RawMessage(input)}
	}
	tests := []struct {
		name     string
		msgs     []Message
		want     []Part
		wantStop string
		wantErr  string
	}{
		{name: "API tool names become wire names", msgs: []Message{user(`{"script":[{"tool":"vault.search","input":{"query":"lease"}}]}`)},
			want: []Part{call("script_1_1", "vault_search", `{"query":"lease"}`)}, wantStop: StopToolUse},
		{name: "input defaults to {}", msgs: []Message{user(`{"script":[{"tool":"ls"}]}`)},
			want: []Part{call("script_1_1", "ls", `{}`)}, wantStop: StopToolUse},
		{name: "text then parallel calls", msgs: []Message{user(`{"script":[{"text":"Reading both.","tool":"read","input":{"path":"a"},"calls":[{"tool":"read","input":{"path":"b"}}]}]}`)},
			want:     []Part{{Type: PartText, Text: "Reading both."}, call("script_1_1", "read", `{"path":"a"}`), call("script_1_2", "read", `{"path":"b"}`)},
			wantStop: StopToolUse},
		{name: "script after some text", msgs: []Message{user("Task: follow this.\n\n" + `{"script":[{"text":"turn {{turn}}"}]}` + "\nThanks.")},
			want: []Part{{Type: PartText, Text: "turn 1"}}, wantStop: StopEndTurn},
		{name: "steps run out: the last tool result", msgs: append([]Message{user(`{"script":[{"tool":"t"}]}`)}, turn("42 files")...),
			want: []Part{{Type: PartText, Text: "42 files"}}, wantStop: StopEndTurn},
		{name: "loop starts again", msgs: append(append([]Message{user(`{"script":[{"tool":"a"},{"tool":"b"}],"loop":true}`)}, turn("1")...), turn("2")...),
			want: []Part{call("script_3_1", "a", `{}`)}, wantStop: StopToolUse},
		{name: "not a script", msgs: []Message{user("hello")}, wantErr: "must hold a script like"},
		{name: "no steps", msgs: []Message{user(`{"script":[]}`)}, wantErr: `"script" has no steps`},
		{name: "empty step", msgs: []Message{user(`{"script":[{}]}`)}, wantErr: `step 1: needs a "tool", "calls" or "text"`},
		{name: "unknown field", msgs: []Message{user(`{"script":[{"tools":"bash"}]}`)}, wantErr: `unknown field "tools"`},
		{name: "input not an object", msgs: []Message{user(`{"script":[{"tool":"bash","input":"ls"}]}`)}, wantErr: "not a JSON object"},
		{name: "no user message", wantErr: "no JSON object found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Builtin{}.Complete(context.Background(), Request{Model: BuiltinScript, Messages: tt.msgs}, Hooks{})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.True(t, strings.HasPrefix(err.Error(), "builtin/script: "))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Content)
			require.Equal(t, tt.wantStop, got.StopReason)
		})
	}
}

func TestScriptPrompt(t *testing.T) {
	s := Script{Steps: []ScriptStep{{Tool: "bash", Input: json.RawMessage(`{"command":"ls"}`)}, {Text: "{{last}}"}}}
	got, err := ParseScript(s.Prompt())
	require.NoError(t, err)
	require.Equal(t, s, got)
}

func TestEcho(t *testing.T) {
	long := strings.Repeat("héllo wörld ", 10)
	var rec recorder
	resp, err := Builtin{}.Complete(context.Background(), Request{Model: BuiltinEcho, Messages: []Message{
		{Role: RoleUser, Content: []Part{{Type: PartText, Text: "first"}}},
		{Role: RoleAssistant, Content: []Part{{Type: PartText, Text: "first"}}},
		{Role: RoleUser, Content: []Part{{Type: PartText, Text: long}}},
	}}, rec.hooks())
	require.NoError(t, err)
	require.Equal(t, []Part{{Type: PartText, Text: long}}, resp.Content)
	require.Equal(t, long, rec.text())
	require.Greater(t, len(rec.deltas), 1, "long text comes in pieces")
	require.Equal(t, Usage{InputTokens: 4 + 2 + 4 + 2 + 4 + approxTokens(long), OutputTokens: approxTokens(long)}, resp.Usage)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Builtin{}.Complete(ctx, Request{Model: BuiltinEcho}, Hooks{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = Builtin{}.Complete(context.Background(), Request{Model: "builtin/nope"}, Hooks{})
	require.ErrorContains(t, err, "unknown built-in model")
}
