package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
)

// startDev starts API and worker on a Redis of the test's own.
func startDev(t *testing.T, mutate func(*system.Config)) (*client, *system.System, *systemtest.Redis) {
	t.Helper()
	r := systemtest.StartRedis(t)
	cfg := systemtest.Config(r.URL)
	if mutate != nil {
		mutate(&cfg)
	}
	sys := systemtest.Start(t, cfg, system.Roles{API: true, Worker: true})
	return newClient(t, sys.APIAddr), sys, r
}

func TestSyncExecuteCompletes(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)

	var resp executeResponse
	code := c.do("POST", "/agent/v1/execute", map[string]any{
		"prompt":       "Review the NDA and return the top 5 issues.",
		"instructions": "You are a contract reviewer.",
		"model":        "builtin/echo",
		"guidance":     "Keep it short.",
		"sandbox":      map[string]any{"cpu": 1, "memoryMiB": 512},
	}, &resp)

	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.HasPrefix(resp.RunID, "run_"), resp.RunID)
	require.True(t, strings.HasPrefix(resp.AgentID, "agent_"), resp.AgentID)
	require.Equal(t, "completed", resp.Status)
	require.Equal(t, systemtest.Driver(), resp.Provider)
	require.NotNil(t, resp.RuntimeID)
	require.True(t, strings.HasPrefix(*resp.RuntimeID, "sbx_"), *resp.RuntimeID)
	require.Equal(t, "ended", resp.RuntimeState)
	require.NotNil(t, resp.Output)
	require.Equal(t, "Review the NDA and return the top 5 issues.", *resp.Output)
	require.Nil(t, resp.Error)
	require.NotNil(t, resp.Logs)
	require.Contains(t, resp.Logs.Runner, "sandbox "+*resp.RuntimeID)
	require.Contains(t, resp.Logs.Linc, "agent started: model builtin/echo")
	require.NotNil(t, resp.Usage)
	require.Equal(t, "builtin/echo", resp.Usage.Model)
	require.Positive(t, resp.Usage.InputTokens)
	require.Positive(t, resp.Usage.OutputTokens)
	require.Positive(t, resp.Usage.DurationMs)

	// The record agrees, and says what ran.
	var details map[string]any
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+resp.RunID+"/details", nil, &details))
	require.Equal(t, "completed", details["status"])
	require.Equal(t, "Keep it short.", details["guidance"])
	require.Equal(t, "builtin/echo", details["model"])
	require.EqualValues(t, 1, details["attempts"])
	result := details["result"].(map[string]any)
	require.Equal(t, *resp.Output, result["output"])
	steps := details["steps"].([]any)
	require.NotEmpty(t, steps)
	require.Equal(t, "output", steps[0].(map[string]any)["type"])
	require.Equal(t, map[string]any{"cpu": 1.0, "memoryMiB": 512.0}, details["sandbox"])
}

func TestLegacyExecuteAnswersAtOnceAndCompletes(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)

	var resp executeResponse
	code := c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hello", "model": "builtin/echo", "agentRuntime": true}, &resp)
	require.Equal(t, http.StatusAccepted, code)
	require.NotEmpty(t, resp.RunID)
	require.NotEmpty(t, resp.AgentID)
	require.Contains(t, []string{"queued", "running"}, resp.Status)
	require.Equal(t, systemtest.Driver(), resp.Provider)
	require.Nil(t, resp.Output, "legacy answers carry no output")
	require.Contains(t, resp.Message, "/agent/v1/run/"+resp.RunID+"/status")

	st := c.waitStatus(resp.RunID)
	require.Equal(t, "completed", st.Status)
	require.NotNil(t, st.StartedAt)
	require.NotNil(t, st.CompletedAt)
	require.NotNil(t, st.DurationMs)

	var details map[string]any
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+resp.RunID+"/details", nil, &details))
	require.Equal(t, "hello", details["result"].(map[string]any)["output"])
}

func TestExecuteValidation(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, func(cfg *system.Config) { cfg.BodyLimit = "2K" })

	tests := []struct {
		name     string
		body     any
		wantCode int
		param    string
		errCode  string
		contains string
	}{
		{name: "prompt missing", body: `{"model":"builtin/echo"}`, wantCode: 400, param: "prompt", errCode: "missing_field", contains: "prompt is required"},
		{name: "prompt null", body: `{"prompt":null}`, wantCode: 400, param: "prompt", errCode: "missing_field"},
		{name: "prompt empty", body: `{"prompt":"  "}`, wantCode: 400, param: "prompt", errCode: "empty_field"},
		{name: "prompt not a string", body: `{"prompt":42}`, wantCode: 400, param: "prompt", errCode: "invalid_type", contains: "prompt must be a string"},
		{name: "tools both", body: `{"prompt":"x","model":"builtin/echo","enabledTools":["bash"],"disabledTools":["read"]}`, wantCode: 400, param: "enabledTools", errCode: "conflicting_fields", contains: "mutually exclusive"},
		{name: "unknown enabled tool", body: `{"prompt":"x","model":"builtin/echo","enabledTools":["rm-rf"]}`, wantCode: 400, param: "enabledTools", errCode: "unknown_tool", contains: "vault.search"},
		{name: "unknown disabled tool", body: `{"prompt":"x","model":"builtin/echo","disabledTools":["nope"]}`, wantCode: 400, param: "disabledTools", errCode: "unknown_tool", contains: "valid tools are"},
		{name: "cpu too high", body: `{"prompt":"x","model":"builtin/echo","sandbox":{"cpu":64}}`, wantCode: 400, param: "sandbox.cpu", errCode: "out_of_range", contains: "between 0.25 and 8"},
		{name: "cpu too low", body: `{"prompt":"x","model":"builtin/echo","sandbox":{"cpu":0}}`, wantCode: 400, param: "sandbox.cpu", errCode: "out_of_range"},
		{name: "memory too high", body: `{"prompt":"x","model":"builtin/echo","sandbox":{"memoryMiB":999999}}`, wantCode: 400, param: "sandbox.memoryMiB", errCode: "out_of_range", contains: "between 128 and 16384"},
		{name: "memory wrong type", body: `{"prompt":"x","sandbox":{"memoryMiB":"lots"}}`, wantCode: 400, param: "sandbox.memoryMiB", errCode: "invalid_type"},
		{name: "malformed json", body: `{"prompt": "x",`, wantCode: 400, errCode: "invalid_json"},
		{name: "not an object", body: `["prompt"]`, wantCode: 400, errCode: "invalid_json"},
		{name: "empty body", body: ``, wantCode: 400, errCode: "invalid_json", contains: "empty"},
		{name: "model not configured", body: `{"prompt":"x","model":"anthropic/claude-sonnet-4.6"}`, wantCode: 400, param: "model", errCode: "model_not_configured", contains: "ONESHOT_ANTHROPIC_API_KEY"},
		{name: "default model not configured", body: `{"prompt":"x"}`, wantCode: 400, param: "model", errCode: "model_not_configured", contains: "ONESHOT_GATEWAY_BASE_URL"},
		{name: "model without provider", body: `{"prompt":"x","model":"gpt"}`, wantCode: 400, param: "model", errCode: "invalid_model", contains: "provider/name"},
		{name: "body too large", body: `{"prompt":"` + strings.Repeat("a", 4096) + `"}`, wantCode: 413, errCode: "body_too_large"},
		{name: "unknown fields ignored", body: `{"prompt":"x","model":"builtin/echo","futureField":{"a":1}}`, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body errorBody
			code := c.do("POST", "/agent/v1/execute", tt.body, &body)
			require.Equal(t, tt.wantCode, code, "%+v", body)
			if tt.wantCode == 200 {
				return
			}
			require.Equal(t, tt.param, body.Error.Param)
			require.Equal(t, tt.errCode, body.Error.Code)
			require.NotEmpty(t, body.Error.Type)
			require.NotEmpty(t, body.Error.Message)
			require.Contains(t, body.Error.Message, tt.contains)
		})
	}
}

func TestNotFoundAndEchoErrorsHaveTheErrorShape(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	tests := []struct {
		name, method, path string
		wantCode           int
		errCode            string
	}{
		{"unknown run status", "GET", "/agent/v1/run/run_doesnotexist/status", 404, "not_found"},
		{"unknown run details", "GET", "/agent/v1/run/run_doesnotexist/details", 404, "not_found"},
		{"garbage run id", "GET", "/agent/v1/run/%2e%2e%2fetc/status", 404, "not_found"},
		{"unknown route", "GET", "/agent/v1/nothing", 404, "route_not_found"},
		{"wrong method", "GET", "/agent/v1/execute", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body errorBody
			require.Equal(t, tt.wantCode, c.do(tt.method, tt.path, nil, &body))
			require.Equal(t, tt.errCode, body.Error.Code)
			require.NotEmpty(t, body.Error.Message)
			require.NotEmpty(t, body.Error.Type)
		})
	}
}

// A sync request whose wake-up never comes (pub/sub is at-most-once) still
// gets its result: the waiter reads the record.
func TestSyncWaiterSurvivesALostWakeUp(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	// API only: this test plays the worker by hand.
	sys := systemtest.Start(t, systemtest.Config(r.URL), system.Roles{API: true})
	c := newClient(t, sys.APIAddr)

	type answer struct {
		code int
		resp executeResponse
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		a.code = c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hi", "model": "builtin/echo"}, &a.resp)
		done <- a
	}()

	runID := waitForPendingTask(t, r)
	store := run.NewStore(run.StoreConfig{Redis: r.Client(t)})
	ctx := context.Background()
	rec, err := store.Start(ctx, runID, "hand")
	require.NoError(t, err)
	require.NotEmpty(t, rec.ReplyTo, "a sync run names its waiter's channel")
	// Lose the wake-up: the record no longer names the waiting process.
	require.NoError(t, r.Client(t).HSet(ctx, "oneshot:run:{"+runID+"}", "replyTo", "").Err())
	require.NoError(t, store.Finish(ctx, runID, &run.Result{Status: run.StatusCompleted, RuntimeState: run.RuntimeEnded, Output: "by hand"}))

	select {
	case a := <-done:
		require.Equal(t, http.StatusOK, a.code)
		require.Equal(t, runID, a.resp.RunID)
		require.Equal(t, "by hand", *a.resp.Output)
	case <-time.After(15 * time.Second):
		t.Fatal("the waiter never read the finished record")
	}
}

func TestSyncTimeoutFallsBackToPolling(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	cfg := systemtest.Config(r.URL)
	cfg.SyncTimeout = 300 * time.Millisecond
	// No worker: the run stays queued past the sync timeout.
	sys := systemtest.Start(t, cfg, system.Roles{API: true})
	c := newClient(t, sys.APIAddr)

	var resp executeResponse
	code := c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hi", "model": "builtin/echo"}, &resp)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "queued", resp.Status)
	require.Contains(t, resp.Message, "Still running after 300ms")
	require.Contains(t, resp.Message, "/agent/v1/run/"+resp.RunID+"/status")

	// A worker that comes later runs it; the result is there to poll.
	wcfg := systemtest.Config(r.URL)
	systemtest.Start(t, wcfg, system.Roles{Worker: true})
	require.Equal(t, "completed", c.waitStatus(resp.RunID).Status)
}

func TestClientThatGoesAwayLeavesTheRunGoing(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	api := systemtest.Start(t, systemtest.Config(r.URL), system.Roles{API: true})
	c := newClient(t, api.APIAddr)

	// The client gives up while its run is still queued (no worker yet).
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/agent/v1/execute", strings.NewReader(`{"prompt":"still here","model":"builtin/echo"}`))
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		errc <- err
	}()
	runID := waitForPendingTask(t, r)
	cancel()
	require.Error(t, <-errc)
	require.Eventually(t, func() bool { return api.API.Waiting() == 0 }, 5*time.Second, 5*time.Millisecond, "the waiter is released")

	systemtest.Start(t, systemtest.Config(r.URL), system.Roles{Worker: true})
	require.Equal(t, "completed", c.waitStatus(runID).Status)
	var details map[string]any
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+runID+"/details", nil, &details))
	require.Equal(t, "still here", details["result"].(map[string]any)["output"])
}

func TestTwoWorkersShareOneQueue(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	apiCfg := systemtest.Config(r.URL)
	api := systemtest.Start(t, apiCfg, system.Roles{API: true})
	for range 2 {
		cfg := systemtest.Config(r.URL)
		cfg.WorkerConcurrency = 1
		systemtest.Start(t, cfg, system.Roles{Worker: true})
	}
	c := newClient(t, api.APIAddr)

	const n = 16
	ids := make(chan string, n)
	for range n {
		go func() {
			var resp executeResponse
			c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "p", "model": "builtin/echo", "agentRuntime": true}, &resp)
			ids <- resp.RunID
		}()
	}
	store := run.NewStore(run.StoreConfig{Redis: r.Client(t)})
	workers := map[string]int{}
	for range n {
		id := <-ids
		require.Equal(t, "completed", c.waitStatus(id).Status)
		rec, err := store.Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, 1, rec.Attempts, "each run ran once")
		workers[rec.Worker]++
	}
	require.Len(t, workers, 2, "both workers took runs: %v", workers)
}

// waitForPendingTask returns the run id of the first execute task queued.
func waitForPendingTask(t *testing.T, r *systemtest.Redis) string {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(r.Client(t))
	var id string
	require.Eventually(t, func() bool {
		list, err := insp.ListPendingTasks(tasks.QueueExecute)
		if err != nil || len(list) == 0 {
			return false
		}
		id = list[0].ID
		return true
	}, 10*time.Second, 5*time.Millisecond)
	return id
}
