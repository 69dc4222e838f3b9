package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Script is the prompt of builtin/script: the first user message holds it as
// JSON, alone or after some text. Turn i (counted by the assistant messages
// already in the request) plays step i; when the steps run out the answer is
// the text of the last tool result, or, with Loop, the steps start again.
//
//	{"script": [
//	  {"tool": "bash", "input": {"command": "echo hi > a.txt"}},
//	  {"tool": "read", "input": {"path": "a.txt"}},
//	  {"text": "done: {{last}}"}
//	]}
type Script struct {
	Steps []ScriptStep `json:"script"`
	// Loop repeats the steps forever, to test turn and token budgets.
	Loop bool `json:"loop,omitempty"`
}

// ScriptStep is one model turn. With Tool or Calls it calls tools (Text, if
// any, comes first, as a model says what it is about to do); with Text only
// it is the final answer. In Text, {{last}} stands for the text of the last
// tool result and {{turn}} for the turn number, from 1.
type ScriptStep struct {
	Text  string          `json:"text,omitempty"`
	Tool  string          `json:"tool,omitempty"`  // API name ("vault.search") or wire name ("vault_search")
	Input json.RawMessage `json:"input,omitempty"` // a JSON object; default {}
	Calls []ScriptCall    `json:"calls,omitempty"` // more calls in the same turn, made in parallel
}

// ScriptCall is one tool call of a step.
type ScriptCall struct {
	Tool  string          `json:"tool"`
	Input json.RawMessage `json:"input,omitempty"`
}

// Prompt returns the script as the prompt to give builtin/script.
func (s Script) Prompt() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ParseScript finds the script in a prompt: the whole prompt, or the first
// JSON object in it that holds a "script".
func ParseScript(prompt string) (Script, error) {
	var first error
	for i, tries := strings.IndexByte(prompt, '{'), 0; i >= 0 && tries < 64; tries++ {
		var s Script
		dec := json.NewDecoder(strings.NewReader(prompt[i:]))
		dec.DisallowUnknownFields()
		err := dec.Decode(&s)
		if err == nil {
			err = s.validate()
		}
		if err == nil {
			return s, nil
		}
		if first == nil {
			first = err
		}
		next := strings.IndexByte(prompt[i+1:], '{')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if first == nil {
		first = errors.New("no JSON object found")
	}
	return Script{}, fmt.Errorf(`the first user message must hold a script like {"script":[{"tool":"bash","input":{"command":"ls"}},{"text":"done: {{last}}"}]}: %w`, first)
}

func (s Script) validate() error {
	if len(s.Steps) == 0 {
		return errors.New(`"script" has no steps`)
	}
	for i, st := range s.Steps {
		calls := st.calls()
		if len(calls) == 0 && st.Text == "" {
			return fmt.Errorf("step %d: needs a \"tool\", \"calls\" or \"text\"", i+1)
		}
		for _, c := range calls {
			if c.Tool == "" {
				return fmt.Errorf("step %d: a call names no tool", i+1)
			}
			if _, err := compactJSON(string(c.Input)); err != nil {
				return fmt.Errorf("step %d: input of %s: %w", i+1, c.Tool, err)
			}
		}
	}
	return nil
}

func (st ScriptStep) calls() []ScriptCall {
	var calls []ScriptCall
	if st.Tool != "" || len(st.Input) > 0 {
		calls = append(calls, ScriptCall{Tool: st.Tool, Input: st.Input})
	}
	return append(calls, st.Calls...)
}

// playScript answers one turn of builtin/script.
func playScript(req Request) (*Response, error) {
	var prompt string
	for _, m := range req.Messages {
		if m.Role == RoleUser {
			prompt = lastUserText([]Message{m})
			break
		}
	}
	s, err := ParseScript(prompt)
	if err != nil {
		return nil, err
	}
	turn := 0
	for _, m := range req.Messages {
		if m.Role == RoleAssistant {
			turn++
		}
	}
	last := lastToolResult(req.Messages)
	if turn >= len(s.Steps) && !s.Loop {
		resp := &Response{StopReason: StopEndTurn}
		if last != "" {
			resp.Content = []Part{{Type: PartText, Text: last}}
		}
		return resp, nil
	}
	st := s.Steps[turn%len(s.Steps)]
	resp := &Response{StopReason: StopEndTurn}
	if st.Text != "" {
		text := strings.NewReplacer("{{last}}", last, "{{turn}}", strconv.Itoa(turn+1)).Replace(st.Text)
		resp.Content = append(resp.Content, Part{Type: PartText, Text: text})
	}
	for i, c := range st.calls() {
		input, _ := compactJSON(string(c.Input)) // checked by validate
		resp.Content = append(resp.Content, Part{
			Type:       PartToolCall,
			ToolCallID: fmt.Sprintf("script_%d_%d", turn+1, i+1),
			ToolName:   strings.ReplaceAll(c.Tool, ".", "_"),
			Input:      input,
		})
		resp.StopReason = StopToolUse
	}
	return resp, nil
}

// lastToolResult is the text of the latest tool result in msgs.
func lastToolResult(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		for j := len(msgs[i].Content) - 1; j >= 0; j-- {
			if p := msgs[i].Content[j]; p.Type == PartToolResult {
				return p.Text
			}
		}
	}
	return ""
}
