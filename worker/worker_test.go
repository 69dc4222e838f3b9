package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/sandbox"
)

// dev starts API and worker on a Redis of the test's own.
func dev(t *testing.T, mutate func(*system.Config)) (*system.System, *run.Store) {
	t.Helper()
	r := systemtest.StartRedis(t)
	cfg := systemtest.Config(r.URL)
	if mutate != nil {
		mutate(&cfg)
	}
	sys := systemtest.Start(t, cfg, system.Roles{API: true, Worker: true})
	return sys, run.NewStore(run.StoreConfig{Redis: r.Client(t)})
}

type result struct {
	RunID        string  `json:"runId"`
	Status       string  `json:"status"`
	RuntimeState string  `json:"runtimeState"`
	Output       string  `json:"output"`
	Error        *string `json:"error"`
	Logs         struct {
		Runner string `json:"runner"`
		Linc   string `json:"linc"`
	} `json:"logs"`
	Usage struct {
		InputTokens  int `json:"inputTokens"`
		OutputTokens int `json:"outputTokens"`
		ToolCalls    int `json:"toolCalls"`
	} `json:"usage"`
}

func execute(t *testing.T, sys *system.System, body any) result {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post("http://"+sys.APIAddr+"/agent/v1/execute", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	var res result
	require.NoError(t, json.Unmarshal(raw, &res))
	return res
}

func script(steps string, loop bool) string {
	s := `{"script":` + steps
	if loop {
		s += `,"loop":true`
	}
	return s + "}"
}

// A runtime that misbehaves fails its run with a clear error; the worker
// goes on serving the next run.
func TestMisbehavingRuntimesFailTheirRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command string
		want    string
	}{
		{"garbage", `read task; echo 'this is not json'; sleep 5`, "runtime protocol error: line 1 is not a protocol message"},
		{"broken event", `read task; echo '{"type":"turn_start","turn":'; sleep 5`, "runtime protocol error: line 1 is not a protocol message"},
		{"nothing", `read task; exit 3`, "the runtime exited without a result (exit code 3)"},
		{"too much", `read task; head -c 9000000 /dev/zero | tr '\0' a; echo`, "runtime protocol error: reading the runtime's output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sys, _ := dev(t, func(c *system.Config) {
				c.RuntimeCommand = []string{"/bin/sh", "-c", tt.command}
			})
			res := execute(t, sys, map[string]any{"prompt": "x", "model": "builtin/echo"})
			require.Equal(t, "failed", res.Status)
			require.NotNil(t, res.Error)
			require.Contains(t, *res.Error, tt.want)
			require.Equal(t, "error", res.RuntimeState)

			// The worker is unharmed: the next run gets the same clear answer.
			res = execute(t, sys, map[string]any{"prompt": "again", "model": "builtin/echo"})
			require.Equal(t, "failed", res.Status)
			require.Contains(t, *res.Error, tt.want)
		})
	}
}

func TestRunFailuresSayWhy(t *testing.T) {
	t.Parallel()
	sys, _ := dev(t, func(c *system.Config) {
		c.RunDeadline = 2 * time.Second
		c.MaxTurns = 3
	})
	tests := []struct {
		name string
		body map[string]any
		want string
	}{
		{"deadline", map[string]any{"model": "builtin/script", "enabledTools": []string{"bash"},
			"prompt": script(`[{"tool":"bash","input":{"command":"sleep 30"}}]`, false)}, "timeout: the run exceeded its deadline of 2s"},
		{"turn budget", map[string]any{"model": "builtin/script", "enabledTools": []string{"bash"},
			"prompt": script(`[{"tool":"bash","input":{"command":"true"}}]`, true)}, "turn budget exhausted"},
		{"model error", map[string]any{"model": "builtin/script", "prompt": "no script here"}, "model call"},
		{"out of memory", map[string]any{"model": "builtin/script", "enabledTools": []string{"bash"}, "sandbox": map[string]any{"memoryMiB": 128},
			"prompt": script(`[{"tool":"bash","input":{"command":"head -c 400m /dev/zero | tail > /dev/null"}}]`, false)}, "out of memory: the sandbox exceeded its limit of 128 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "out of memory" && systemtest.Driver() == sandbox.ProcessDriverName {
				t.Skip("the unsafe-process driver sets no memory limit")
			}
			res := execute(t, sys, tt.body)
			require.Equal(t, "failed", res.Status, "output: %s", res.Output)
			require.NotNil(t, res.Error)
			require.Contains(t, *res.Error, tt.want)
		})
	}
}

// The whole tool path in a real sandbox: the model writes a file with bash,
// reads it back, and answers with what it read; steps, usage and events say so.
func TestToolRoundTripInASandbox(t *testing.T) {
	t.Parallel()
	sys, store := dev(t, nil)
	res := execute(t, sys, map[string]any{
		"model":        "builtin/script",
		"enabledTools": []string{"bash", "write", "read"},
		"prompt": script(`[
			{"tool":"bash","input":{"command":"echo from-bash > a.txt && whoami 2>/dev/null || id -u"}},
			{"tool":"write","input":{"path":"b.txt","content":"from-write"}},
			{"tool":"read","input":{"path":"b.txt"}},
			{"text":"read back: {{last}}"}]`, false),
	})
	require.Equal(t, "completed", res.Status, "%v", res.Error)
	require.Equal(t, "read back: from-write", res.Output)
	require.Equal(t, 3, res.Usage.ToolCalls)
	require.Positive(t, res.Usage.InputTokens)
	require.Contains(t, res.Logs.Linc, "tool bash: ok")
	require.Contains(t, res.Logs.Linc, "tool read: ok")

	ctx := context.Background()
	rec, err := store.Get(ctx, res.RunID)
	require.NoError(t, err)
	var types []string
	for _, s := range rec.Steps {
		types = append(types, s.Type)
	}
	require.Equal(t, []string{"tool_call", "tool_result", "tool_call", "tool_result", "tool_call", "tool_result", "output"}, types)
	require.Equal(t, "bash", rec.Steps[0].ToolName)
	require.Equal(t, "from-write", rec.Steps[5].ToolOutput)
	require.Len(t, rec.Usage.Entries, 4, "one usage entry per model call")

	events, err := store.Events(ctx, res.RunID, 0, 1000)
	require.NoError(t, err)
	var order []string
	for _, e := range events {
		switch e.Type {
		case "agent_start", "tool_execution_start", "tool_execution_end", "agent_end", run.EventEnd:
			order = append(order, e.Type)
		}
	}
	require.Equal(t, []string{"agent_start",
		"tool_execution_start", "tool_execution_end",
		"tool_execution_start", "tool_execution_end",
		"tool_execution_start", "tool_execution_end",
		"agent_end", run.EventEnd}, order)
}

func TestToolAllowListIsHonoured(t *testing.T) {
	t.Parallel()
	sys, _ := dev(t, nil)
	steps := `[{"tool":"bash","input":{"command":"echo hi"}},{"text":"{{last}}"}]`
	res := execute(t, sys, map[string]any{"model": "builtin/script", "enabledTools": []string{"read"}, "prompt": script(steps, false)})
	require.Equal(t, "completed", res.Status)
	require.Contains(t, res.Output, `tool "bash" is not available in this run`)

	res = execute(t, sys, map[string]any{"model": "builtin/script", "disabledTools": []string{"bash"}, "prompt": script(steps, false)})
	require.Contains(t, res.Output, `tool "bash" is not available in this run`)

	res = execute(t, sys, map[string]any{"model": "builtin/script", "disabledTools": []string{"read"}, "prompt": script(steps, false)})
	require.Equal(t, "hi\n", res.Output)
	require.False(t, strings.Contains(res.Output, "not available"))
}

// The model is offered the run's tools, as the worker decides them: a
// provider speaking the Anthropic Messages wire format sees each tool, under
// its wire name, with its schema.
func TestModelIsOfferedTheRunsTools(t *testing.T) {
	t.Parallel()
	var got struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
	}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4.6",`+
			`"content":[{"type":"text","text":"done"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":1}}`)
	}))
	defer provider.Close()
	sys, _ := dev(t, func(c *system.Config) {
		c.AnthropicAPIKey, c.AnthropicBaseURL, c.DisableStreaming = "test-key", provider.URL, true
	})
	res := execute(t, sys, map[string]any{"prompt": "p", "model": "anthropic/claude-sonnet-4.6", "enabledTools": []string{"read", "vault.search"}})
	require.Equal(t, "completed", res.Status, "%+v", res)
	require.Equal(t, "done", res.Output)
	require.Len(t, got.Tools, 2)
	require.Equal(t, "read", got.Tools[0].Name)
	require.Equal(t, "vault_search", got.Tools[1].Name, "wire names have no dots")
	require.Contains(t, string(got.Tools[1].InputSchema), `"query"`)
}
