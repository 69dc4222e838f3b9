package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/model"
)

// fakeWorker plays the worker's side of the protocol for one Run.
type fakeWorker struct {
	// modelFunc answers the n-th model request (from 1). Nil answers "done".
	modelFunc func(n int, req *model.Request) ToRuntime
	// toolFunc answers a tool request. Nil refuses it.
	toolFunc func(msg FromRuntime) ToRuntime
	// closeInputAt closes the runtime's input instead of answering the n-th
	// model request (0: never).
	closeInputAt int
	// noiseFunc returns lines written before the answer to a request.
	noiseFunc func(msg FromRuntime) []string
}

// session is what a fake worker saw.
type session struct {
	lines    []FromRuntime
	raw      [][]byte
	requests []*model.Request
	runErr   error
	elapsed  time.Duration
}

// types returns the types of the lines, without logs and requests.
func (s *session) types() []string {
	var out []string
	for _, m := range s.lines {
		switch m.Type {
		case TypeLog, TypeModelRequest, TypeToolRequest:
			continue
		}
		out = append(out, m.Type)
	}
	return out
}

func (s *session) result(t *testing.T) FromRuntime {
	t.Helper()
	require.NotEmpty(t, s.lines)
	last := s.lines[len(s.lines)-1]
	require.Equal(t, TypeResult, last.Type, "the last line is the result")
	for _, m := range s.lines[:len(s.lines)-1] {
		require.NotEqual(t, TypeResult, m.Type, "exactly one result")
	}
	return last
}

// event returns the raw fields of the i-th line of a type.
func (s *session) events(typ string) []map[string]any {
	var out []map[string]any
	for i, m := range s.lines {
		if m.Type == typ {
			var f map[string]any
			if json.Unmarshal(s.raw[i], &f) == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// syncBuffer is a writer for diagnostics that tests may read.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// runAgent runs the runtime in-process against w, with an io.Pipe pair for
// stdin and stdout, and returns what the worker saw.
func runAgent(t *testing.T, task Task, workspace string, w fakeWorker) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		err := Run(context.Background(), inR, outW, &syncBuffer{}, workspace)
		outW.Close()
		done <- err
	}()
	defer inW.Close()
	// A runtime that hangs fails the test instead of the test run.
	watchdog := time.AfterFunc(20*time.Second, func() {
		t.Errorf("the runtime hung")
		outR.CloseWithError(io.ErrClosedPipe)
		inW.Close()
	})
	defer watchdog.Stop()

	enc := json.NewEncoder(inW)
	go enc.Encode(ToRuntime{Type: TypeTask, Task: &task})

	s := &session{}
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	models := 0
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var msg FromRuntime
		require.NoError(t, json.Unmarshal(line, &msg), "line %q", line)
		s.lines = append(s.lines, msg)
		s.raw = append(s.raw, line)
		if w.noiseFunc != nil && (msg.Type == TypeModelRequest || msg.Type == TypeToolRequest) {
			for _, l := range w.noiseFunc(msg) {
				_, err := io.WriteString(inW, l+"\n")
				require.NoError(t, err)
			}
		}
		switch msg.Type {
		case TypeModelRequest:
			models++
			s.requests = append(s.requests, msg.Request)
			if models == w.closeInputAt {
				inW.Close()
				continue
			}
			resp := ToRuntime{Response: &model.Response{Content: []model.Part{{Type: model.PartText, Text: "done"}}, StopReason: model.StopEndTurn}}
			if w.modelFunc != nil {
				resp = w.modelFunc(models, msg.Request)
			}
			resp.Type, resp.ID = TypeModelResponse, msg.ID
			require.NoError(t, enc.Encode(resp))
		case TypeToolRequest:
			resp := ToRuntime{Output: "no tools here", IsError: true}
			if w.toolFunc != nil {
				resp = w.toolFunc(msg)
			}
			resp.Type, resp.ID = TypeToolResponse, msg.ID
			require.NoError(t, enc.Encode(resp))
		}
	}
	s.runErr = <-done
	s.elapsed = time.Since(start)
	return s
}

func text(s string) ToRuntime {
	return ToRuntime{Response: &model.Response{Content: []model.Part{{Type: model.PartText, Text: s}}, StopReason: model.StopEndTurn}}
}

func toolCall(id, wireName, input string) ToRuntime {
	return ToRuntime{Response: &model.Response{Content: []model.Part{
		{Type: model.PartToolCall, ToolCallID: id, ToolName: wireName, Input: json.RawMessage(input)},
	}, StopReason: model.StopToolUse}}
}

// lastToolResult returns the tool result parts the model was sent last.
func lastToolResults(req *model.Request) []model.Part {
	last := req.Messages[len(req.Messages)-1]
	var out []model.Part
	for _, p := range last.Content {
		if p.Type == model.PartToolResult {
			out = append(out, p)
		}
	}
	return out
}

func tools(t *testing.T, names ...string) []string {
	for _, n := range names {
		_, ok := LookupTool(n)
		require.True(t, ok, n)
	}
	return names
}

func TestRunPlainAnswer(t *testing.T) {
	s := runAgent(t, Task{RunID: "run_1", Prompt: "say hello", Model: "builtin/echo"}, t.TempDir(), fakeWorker{
		modelFunc: func(n int, req *model.Request) ToRuntime { return text("hello") },
	})
	require.NoError(t, s.runErr)
	require.Equal(t, []string{"agent_start", "turn_start", "message_start", "message_end", "turn_end", "agent_end", "result"}, s.types())
	res := s.result(t)
	require.Empty(t, res.Error)
	require.Equal(t, "hello", res.Output)
	require.Len(t, res.Steps, 1)
	require.Equal(t, "output", res.Steps[0].Type)

	require.Len(t, s.requests, 1)
	req := s.requests[0]
	require.Equal(t, "builtin/echo", req.Model)
	require.Equal(t, DefaultInstructions, req.System)
	require.Equal(t, "say hello", req.Messages[0].Content[0].Text)

	// Every line leads with its type, so that the worker need not decode
	// event lines to route them.
	for i, line := range s.raw {
		typ, ok := LeadingType(line)
		require.True(t, ok, "line %d: %s", i, line)
		require.Equal(t, s.lines[i].Type, typ, "line %d", i)
	}
}

func TestLeadingType(t *testing.T) {
	for line, want := range map[string]string{
		`{"type":"turn_start","turn":1}`: "turn_start",
		`{"type":"agent_start"}`:         "agent_start",
		`{"type":"log","line":"x"}`:      "log",
		`{"turn":1,"type":"turn_start"}`: "", // not first: decode the line
		`{"type": "turn_start"}`:         "", // not the runtime's spelling
		`{"type":"tu\"rn"}`:              "", // escaped: decode the line
		`{"type":""}`:                    "",
		`{"type":"unterminated`:          "",
		`not json`:                       "",
	} {
		typ, ok := LeadingType([]byte(line))
		require.Equal(t, want, typ, line)
		require.Equal(t, want != "", ok, line)
	}
}

func TestRunToolRoundTrip(t *testing.T) {
	ws := t.TempDir()
	task := Task{RunID: "run_2", Prompt: "write then read", Model: "m/x", Tools: tools(t, "write", "read"), Instructions: "be brief", Guidance: "no chatter"}
	s := runAgent(t, task, ws, fakeWorker{modelFunc: func(n int, req *model.Request) ToRuntime {
		switch n {
		case 1:
			return toolCall("c1", "write", `{"path":"notes/a.txt","content":"hi there\n"}`)
		case 2:
			res := lastToolResults(req)
			require.Len(t, res, 1)
			require.False(t, res[0].IsError, res[0].Text)
			require.Equal(t, "c1", res[0].ToolCallID)
			return toolCall("c2", "read", `{"path":"notes/a.txt"}`)
		default:
			res := lastToolResults(req)
			require.Len(t, res, 1)
			require.Equal(t, "hi there\n", res[0].Text)
			return text("the file says hi")
		}
	}})
	require.NoError(t, s.runErr)

	b, err := os.ReadFile(filepath.Join(ws, "notes", "a.txt"))
	require.NoError(t, err)
	require.Equal(t, "hi there\n", string(b))

	turn := []string{"turn_start", "message_start", "message_end", "tool_execution_start", "tool_execution_end", "turn_end"}
	want := []string{"agent_start"}
	want = append(want, turn...)
	want = append(want, turn...)
	want = append(want, "turn_start", "message_start", "message_end", "turn_end", "agent_end", "result")
	require.Equal(t, want, s.types())

	starts := s.events(EventToolExecutionStart)
	require.Equal(t, "write", starts[0]["toolName"])
	require.Equal(t, "c1", starts[0]["toolCallId"])
	require.Equal(t, "read", starts[1]["toolName"])
	ends := s.events(EventToolExecutionEnd)
	require.Equal(t, false, ends[1]["isError"])
	require.Equal(t, "hi there\n", ends[1]["result"])

	res := s.result(t)
	require.Empty(t, res.Error)
	require.Equal(t, "the file says hi", res.Output)
	var steps []string
	for _, st := range res.Steps {
		steps = append(steps, st.Type)
	}
	require.Equal(t, []string{"tool_call", "tool_result", "tool_call", "tool_result", "output"}, steps)

	req := s.requests[0]
	require.Equal(t, "be brief\n\nGuidance for this run:\nno chatter", req.System)
	require.Empty(t, req.Tools, "the worker offers the run's tools")
}

func TestOfferedToolsUseWireNames(t *testing.T) {
	offered := OfferedTools([]string{"write", "vault.search", "no-such-tool"})
	require.Len(t, offered, 2)
	require.Equal(t, "write", offered[0].Name)
	require.Equal(t, "vault_search", offered[1].Name, "wire names have no dots")
	require.JSONEq(t, string(mustLookup(t, "vault.search").Schema), string(offered[1].Schema))
}

func mustLookup(t *testing.T, name string) ToolSpec {
	spec, ok := LookupTool(name)
	require.True(t, ok, name)
	return spec
}

func TestRunToolErrorsGoBackToTheModel(t *testing.T) {
	s := runAgent(t, Task{Prompt: "p", Model: "m/x", Tools: tools(t, "read")}, t.TempDir(), fakeWorker{
		modelFunc: func(n int, req *model.Request) ToRuntime {
			switch n {
			case 1: // a missing file and a tool the run was not offered
				return ToRuntime{Response: &model.Response{Content: []model.Part{
					{Type: model.PartToolCall, ToolCallID: "a", ToolName: "read", Input: json.RawMessage(`{"path":"missing.txt"}`)},
					{Type: model.PartToolCall, ToolCallID: "b", ToolName: "bash", Input: json.RawMessage(`{"command":"echo hi"}`)},
					{Type: model.PartToolCall, ToolCallID: "c", ToolName: "read", Input: json.RawMessage(`[1,2]`)},
				}}}
			default:
				res := lastToolResults(req)
				require.Len(t, res, 3)
				for _, r := range res {
					require.True(t, r.IsError, r.Text)
				}
				require.Contains(t, res[0].Text, "no such file")
				require.Contains(t, res[1].Text, `tool "bash" is not available in this run`)
				require.Contains(t, res[2].Text, "invalid arguments")
				return text("recovered")
			}
		},
	})
	require.NoError(t, s.runErr)
	res := s.result(t)
	require.Empty(t, res.Error)
	require.Equal(t, "recovered", res.Output)
}

func TestRunHostTool(t *testing.T) {
	var got []FromRuntime
	s := runAgent(t, Task{Prompt: "p", Model: "m/x", Tools: tools(t, "vault.search")}, t.TempDir(), fakeWorker{
		modelFunc: func(n int, req *model.Request) ToRuntime {
			switch n {
			case 1:
				return toolCall("h1", "vault_search", `{"query":"indemnity"}`)
			case 2:
				res := lastToolResults(req)
				require.False(t, res[0].IsError)
				require.Equal(t, "3 passages found", res[0].Text)
				require.Equal(t, "vault_search", res[0].ToolName)
				return toolCall("h2", "vault_search", `{"query":"forbidden"}`)
			default:
				res := lastToolResults(req)
				require.True(t, res[0].IsError)
				require.Equal(t, "vault is not attached", res[0].Text)
				return text("ok")
			}
		},
		toolFunc: func(msg FromRuntime) ToRuntime {
			got = append(got, msg)
			if strings.Contains(string(msg.Input), "forbidden") {
				return ToRuntime{Output: "vault is not attached", IsError: true}
			}
			return ToRuntime{Output: "3 passages found"}
		},
	})
	require.NoError(t, s.runErr)
	require.Len(t, got, 2)
	require.Equal(t, "vault.search", got[0].Tool, "tool requests carry the API name")
	require.JSONEq(t, `{"query":"indemnity"}`, string(got[0].Input))
	require.Equal(t, "ok", s.result(t).Output)
	ends := s.events(EventToolExecutionEnd)
	require.Equal(t, "vault.search", ends[0]["toolName"])
	require.Equal(t, true, ends[1]["isError"])
}

func TestRunModelError(t *testing.T) {
	s := runAgent(t, Task{Prompt: "p", Model: "m/x"}, t.TempDir(), fakeWorker{
		modelFunc: func(n int, req *model.Request) ToRuntime { return ToRuntime{Error: "provider overloaded"} },
	})
	require.NoError(t, s.runErr)
	res := s.result(t)
	require.Equal(t, "model call: provider overloaded", res.Error)
	require.Empty(t, res.Output)
	end := s.events(EventAgentEnd)
	require.Len(t, end, 1)
	require.Equal(t, "model call: provider overloaded", end[0]["error"])

	// A response with neither a response nor an error is an error too.
	s = runAgent(t, Task{Prompt: "p", Model: "m/x"}, t.TempDir(), fakeWorker{
		modelFunc: func(n int, req *model.Request) ToRuntime { return ToRuntime{} },
	})
	require.Contains(t, s.result(t).Error, "the worker sent no response")
}

func TestRunMaxTurns(t *testing.T) {
	s := runAgent(t, Task{Prompt: "p", Model: "m/x", Tools: tools(t, "ls"), MaxTurns: 2}, t.TempDir(), fakeWorker{
		modelFunc: func(n int, req *model.Request) ToRuntime { return toolCall("c", "ls", `{}`) },
	})
	require.NoError(t, s.runErr)
	require.Len(t, s.requests, 2)
	res := s.result(t)
	require.Contains(t, res.Error, "turn budget exhausted")
	require.Len(t, res.Steps, 4) // two tool calls and their results
}

func TestRunInputClosed(t *testing.T) {
	t.Run("while waiting for the model", func(t *testing.T) {
		s := runAgent(t, Task{Prompt: "p", Model: "m/x"}, t.TempDir(), fakeWorker{closeInputAt: 1})
		require.NoError(t, s.runErr)
		require.Contains(t, s.result(t).Error, "the worker closed the runtime's input")
	})
	// While a command runs: TestRunCancelsToolsWhenInputEnds.
}

func TestRunCancelsToolsWhenInputEnds(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), inR, outW, io.Discard, t.TempDir())
		outW.Close()
	}()
	enc := json.NewEncoder(inW)
	go enc.Encode(ToRuntime{Type: TypeTask, Task: &Task{Prompt: "p", Model: "m/x", Tools: tools(t, "bash")}})
	sc := bufio.NewScanner(outR)
	start := time.Now()
	var res FromRuntime
	var toolEnd map[string]any
	for sc.Scan() {
		var msg FromRuntime
		require.NoError(t, json.Unmarshal(sc.Bytes(), &msg))
		switch msg.Type {
		case EventToolExecutionEnd:
			require.NoError(t, json.Unmarshal(sc.Bytes(), &toolEnd))
		case TypeModelRequest:
			go enc.Encode(ToRuntime{Type: TypeModelResponse, ID: msg.ID, Response: toolCall("c", "bash", `{"command":"sleep 60"}`).Response})
		case EventToolExecutionStart:
			start = time.Now()
			inW.Close() // the worker goes away while the command runs
		case TypeResult:
			res = msg
		}
	}
	require.NoError(t, <-done)
	require.Less(t, time.Since(start), 10*time.Second, "the command was killed when the input ended")
	require.Equal(t, true, toolEnd["isError"])
	require.Contains(t, toolEnd["result"], "cancelled: the worker closed the runtime's input")
	require.Contains(t, res.Error, "the worker closed the runtime's input")
}

func TestRunBadFirstLine(t *testing.T) {
	for _, tc := range []struct {
		name, input string
	}{
		{"empty", ""},
		{"not json", "hello\n"},
		{"not a task", `{"type":"model_response","id":"m1"}` + "\n"},
		{"task without body", `{"type":"task"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := Run(context.Background(), strings.NewReader(tc.input), &out, io.Discard, t.TempDir())
			require.Error(t, err)
			var res FromRuntime
			require.NoError(t, json.Unmarshal([]byte(out.String()), &res))
			require.Equal(t, TypeResult, res.Type)
			require.Contains(t, res.Error, "read task")
		})
	}
}

func TestRunIgnoresStrayInput(t *testing.T) {
	// Garbage, answers to no request, and answers of the wrong type are
	// skipped; the real answer still gets through.
	s := runAgent(t, Task{Prompt: "p", Model: "m/x"}, t.TempDir(), fakeWorker{
		noiseFunc: func(msg FromRuntime) []string {
			return []string{
				"not json at all",
				"",
				`{"type":"model_response","id":"m99","response":{"content":[{"type":"text","text":"stray"}]}}`,
				`{"type":"tool_response","id":"` + msg.ID + `","output":"wrong type"}`,
				`{"type":"task","task":{"prompt":"another task"}}`,
			}
		},
		modelFunc: func(n int, req *model.Request) ToRuntime { return text("right") },
	})
	require.NoError(t, s.runErr)
	require.Equal(t, "right", s.result(t).Output)
	require.Len(t, s.requests, 1)
}
