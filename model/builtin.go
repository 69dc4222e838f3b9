package model

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// BuiltinProvider is the provider name of the offline models.
const BuiltinProvider = "builtin"

// The offline models.
const (
	// BuiltinEcho answers with the last user text.
	BuiltinEcho = "builtin/echo"
	// BuiltinScript plays the tool calls of a script given as the prompt;
	// see Script.
	BuiltinScript = "builtin/script"
)

// BuiltinModels lists the offline models.
var BuiltinModels = []string{BuiltinEcho, BuiltinScript}

// Builtin serves the offline models, which need no network and no key, for
// demos and tests: builtin/echo answers with the prompt, builtin/script plays
// a script of tool calls so that the whole tool path runs offline.
type Builtin struct{}

func (Builtin) Name() string { return BuiltinProvider }

func (Builtin) Complete(ctx context.Context, req Request, hooks Hooks) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", req.Model, err)
	}
	var resp *Response
	switch req.Model {
	case BuiltinEcho:
		resp = &Response{StopReason: StopEndTurn}
		if text := lastUserText(req.Messages); text != "" {
			resp.Content = []Part{{Type: PartText, Text: text}}
		}
	case BuiltinScript:
		var err error
		if resp, err = playScript(req); err != nil {
			return nil, fmt.Errorf("%s: %w", BuiltinScript, err)
		}
	default:
		return nil, fmt.Errorf("model %q: unknown built-in model; built-ins are %s", req.Model, strings.Join(BuiltinModels, ", "))
	}
	// Stream the text the way a provider would, a few words at a time.
	if hooks.DeltaFunc != nil {
		for _, p := range resp.Content {
			if p.Type == PartText {
				for _, chunk := range chunks(p.Text, 16) {
					hooks.DeltaFunc(Delta{Text: chunk})
				}
			}
		}
	}
	resp.Usage = Usage{InputTokens: countTokens(req), OutputTokens: outputTokens(resp.Content)}
	return resp, nil
}

func isBuiltin(id string) bool { return slices.Contains(BuiltinModels, id) }

// chunks cuts s into pieces of about n bytes, at spaces where it can, never
// inside a UTF-8 sequence.
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := strings.LastIndexByte(s[:n], ' ') + 1
		if i == 0 {
			for i = n; i < len(s) && s[i]&0xC0 == 0x80; i++ {
			}
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func lastUserText(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != RoleUser {
			continue
		}
		for _, p := range msgs[i].Content {
			if p.Type == PartText {
				return p.Text
			}
		}
	}
	return ""
}

// approxTokens estimates tokens as a quarter of the bytes, the usual rule of
// thumb for English text and code.
func approxTokens(s string) int { return (len(s) + 3) / 4 }

// countTokens estimates the input tokens of req: system prompt, tool
// definitions and messages, with a few tokens of framing for each message.
func countTokens(req Request) int {
	n := approxTokens(req.System)
	for _, t := range req.Tools {
		n += approxTokens(t.Name) + approxTokens(t.Description) + approxTokens(string(t.Schema))
	}
	for _, m := range req.Messages {
		n += 4 + outputTokens(m.Content)
	}
	return n
}

// outputTokens estimates the tokens of parts, a tool call costing its name
// and input plus some framing.
func outputTokens(parts []Part) int {
	n := 0
	for _, p := range parts {
		n += approxTokens(p.Text)
		if p.Type == PartToolCall || p.Type == PartToolResult {
			n += 8 + approxTokens(p.ToolName) + approxTokens(string(p.Input))
		}
	}
	return n
}
