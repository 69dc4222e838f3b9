package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/oneshot-dev/oneshot/chat"
)

// execute runs the agent loop and returns the result message.
func (rt *runtime) execute(ctx context.Context, task *Task) FromRuntime {
	start := time.Now()
	rt.emit(EventAgentStart, map[string]any{"runId": task.RunID, "model": task.Model})
	rt.logf("agent started: model %s, %d tools", task.Model, len(task.Tools))

	// The model calls the tools by their wire names.
	byWire := make(map[string]ToolSpec, len(task.Tools))
	for _, name := range task.Tools {
		if t, ok := LookupTool(name); ok {
			byWire[WireName(t.Name)] = t
		} else {
			rt.logf("tool %q is unknown to this runtime: calls to it fail", name)
		}
	}
	msgs := []chat.Message{{Role: chat.RoleUser, Content: []chat.Part{{Type: chat.PartText, Text: task.Prompt}}}}

	output, err := rt.loop(ctx, task, byWire, msgs)
	rt.emit(EventAgentEnd, map[string]any{"durationMs": time.Since(start).Milliseconds(), "error": errString(err)})
	if err != nil {
		rt.logf("agent failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
		return FromRuntime{Type: TypeResult, Error: err.Error(), Steps: rt.steps}
	}
	rt.logf("agent finished in %s", time.Since(start).Round(time.Millisecond))
	return FromRuntime{Type: TypeResult, Output: output, Steps: rt.steps}
}

func (rt *runtime) loop(ctx context.Context, task *Task, byWire map[string]ToolSpec, msgs []chat.Message) (string, error) {
	for turn := 1; ; turn++ {
		if task.MaxTurns > 0 && turn > task.MaxTurns {
			return "", fmt.Errorf("turn budget exhausted: no final answer after %d turns (maxTurns)", task.MaxTurns)
		}
		rt.emit(EventTurnStart, map[string]any{"turn": turn})
		rt.logf("turn %d: calling %s", turn, task.Model)
		rt.emit(EventMessageStart, map[string]any{"role": chat.RoleAssistant})
		// No tools: the worker offers the run's (see the package doc).
		resp, err := rt.callModel(ctx, chat.Request{
			Model:     task.Model,
			System:    systemPrompt(task),
			Messages:  msgs,
			MaxTokens: task.MaxTokens,
		})
		if err != nil {
			return "", err
		}
		rt.emit(EventMessageEnd, map[string]any{"role": chat.RoleAssistant, "content": resp.Content, "stopReason": resp.StopReason, "usage": resp.Usage})
		msgs = append(msgs, chat.Message{Role: chat.RoleAssistant, Content: resp.Content})

		var text strings.Builder
		var calls []chat.Part
		for _, p := range resp.Content {
			switch p.Type {
			case chat.PartText:
				text.WriteString(p.Text)
			case chat.PartThinking:
				rt.step(Step{Type: "thinking", Content: p.Text})
			case chat.PartToolCall:
				calls = append(calls, p)
			}
		}
		if text.Len() > 0 {
			rt.step(Step{Type: "output", Content: text.String()})
		}
		if len(calls) == 0 {
			rt.emit(EventTurnEnd, map[string]any{"turn": turn, "toolCalls": 0})
			return text.String(), nil
		}
		results := make([]chat.Part, 0, len(calls))
		for _, call := range calls {
			results = append(results, rt.callTool(ctx, call, byWire))
		}
		msgs = append(msgs, chat.Message{Role: chat.RoleUser, Content: results})
		rt.emit(EventTurnEnd, map[string]any{"turn": turn, "toolCalls": len(calls)})
	}
}

// callModel asks the worker to make a model call.
func (rt *runtime) callModel(ctx context.Context, req chat.Request) (*chat.Response, error) {
	resp, err := rt.request(ctx, FromRuntime{Type: TypeModelRequest, Request: &req})
	switch {
	case err != nil:
		return nil, fmt.Errorf("model call: %w", err)
	case resp.Error != "":
		return nil, fmt.Errorf("model call: %s", resp.Error)
	case resp.Response == nil:
		return nil, fmt.Errorf("model call: the worker sent no response")
	}
	return resp.Response, nil
}

// callTool runs one tool call, in the sandbox or through the worker, and
// returns its result part. Tool errors go back to the model, not up.
func (rt *runtime) callTool(ctx context.Context, call chat.Part, byWire map[string]ToolSpec) chat.Part {
	start := time.Now()
	spec, offered := byWire[call.ToolName]
	name := spec.Name
	if !offered {
		name = call.ToolName
	}
	input := call.Input
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	rt.emit(EventToolExecutionStart, map[string]any{"toolCallId": call.ToolCallID, "toolName": name, "args": input})
	rt.step(Step{Type: "tool_call", ToolName: name, ToolInput: input})

	var out string
	var err error
	switch {
	case !offered:
		err = fmt.Errorf("tool %q is not available in this run", call.ToolName)
	case spec.Host:
		out, err = rt.callHostTool(ctx, name, input)
	default:
		rt.flush() // the tool may take long: its start is news now
		out, err = runSandboxTool(ctx, rt.workspace, name, input)
	}
	isError := err != nil
	if isError {
		out = err.Error()
	}
	d := time.Since(start)
	rt.emit(EventToolExecutionEnd, map[string]any{"toolCallId": call.ToolCallID, "toolName": name, "result": out, "isError": isError, "durationMs": d.Milliseconds()})
	rt.step(Step{Type: "tool_result", ToolName: name, ToolOutput: out, IsError: isError, DurationMs: d.Milliseconds()})
	status := "ok"
	if isError {
		status = "error"
	}
	rt.logf("tool %s: %s in %s", name, status, d.Round(time.Millisecond))
	return chat.Part{Type: chat.PartToolResult, ToolCallID: call.ToolCallID, ToolName: call.ToolName, Text: out, IsError: isError}
}

// callHostTool asks the worker to run a service tool.
func (rt *runtime) callHostTool(ctx context.Context, name string, input json.RawMessage) (string, error) {
	resp, err := rt.request(ctx, FromRuntime{Type: TypeToolRequest, Tool: name, Input: input})
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	if resp.IsError {
		return "", fmt.Errorf("%s", resp.Output)
	}
	return resp.Output, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
