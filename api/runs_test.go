package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/tasks"
)

type runCreated struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agentId"`
	CreatedAt time.Time `json:"createdAt"`
	ObjectIDs []string  `json:"objectIds"`
	Status    string    `json:"status"`
}

type execAnswer struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	WorkflowID string `json:"workflowId"`
	Message    string `json:"message"`
}

type runListAnswer struct {
	Runs []struct {
		ID          string     `json:"id"`
		AgentID     string     `json:"agentId"`
		Status      string     `json:"status"`
		Prompt      string     `json:"prompt"`
		Model       string     `json:"model"`
		CreatedAt   time.Time  `json:"createdAt"`
		StartedAt   *time.Time `json:"startedAt"`
		CompletedAt *time.Time `json:"completedAt"`
	} `json:"runs"`
	HasMore    bool    `json:"hasMore"`
	NextCursor *string `json:"nextCursor"`
}

// createRun makes a queued run of an agent and checks the answer.
func (c *client) createRun(body map[string]any) runCreated {
	c.t.Helper()
	var out runCreated
	require.Equal(c.t, http.StatusCreated, c.do("POST", "/agent/v1/run", body, &out), "%+v", out)
	return out
}

func (c *client) exec(id string) execAnswer {
	c.t.Helper()
	var out execAnswer
	require.Equal(c.t, http.StatusOK, c.do("POST", "/agent/v1/run/"+id+"/exec", nil, &out), "%+v", out)
	return out
}

func pendingExecuteTasks(t *testing.T, r *systemtest.Redis) int {
	t.Helper()
	list, err := asynq.NewInspectorFromRedisClient(r.Client(t)).ListPendingTasks(tasks.QueueExecute)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		require.NoError(t, err)
	}
	return len(list)
}

func TestCreateRunThenExec(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	// The API alone first: a created run must not be queued.
	api := systemtest.Start(t, systemtest.Config(r.URL), system.Roles{API: true})
	c := newClient(t, api.APIAddr)
	a := c.createAgent(map[string]any{"name": "echo", "instructions": "Repeat.", "model": "builtin/echo"})

	created := c.createRun(map[string]any{"agentId": a.ID, "prompt": "say this back", "guidance": "verbatim", "objectIds": []string{"obj_1"}})
	require.True(t, strings.HasPrefix(created.ID, "run_"), created.ID)
	require.Equal(t, a.ID, created.AgentID)
	require.Equal(t, "queued", created.Status)
	require.Equal(t, []string{"obj_1"}, created.ObjectIDs)
	require.WithinDuration(t, time.Now(), created.CreatedAt, time.Minute)
	require.Zero(t, pendingExecuteTasks(t, r), "nothing runs before exec")

	var details map[string]any
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+created.ID+"/details", nil, &details))
	require.Equal(t, "queued", details["status"])
	require.Equal(t, "Repeat.", details["instructions"])
	require.Equal(t, "verbatim", details["guidance"])
	require.Equal(t, "builtin/echo", details["model"])

	ex := c.exec(created.ID)
	require.Equal(t, execAnswer{ID: created.ID, Status: "running", WorkflowID: created.ID, Message: ex.Message}, ex)
	require.Contains(t, ex.Message, "/agent/v1/run/"+created.ID+"/events")
	require.Equal(t, 1, pendingExecuteTasks(t, r))

	// Exec is once: the second is a 409 that says why, and queues nothing.
	var body errorBody
	require.Equal(t, http.StatusConflict, c.do("POST", "/agent/v1/run/"+created.ID+"/exec", nil, &body))
	require.Equal(t, "run_not_queued", body.Error.Code)
	require.Equal(t, "conflict_error", body.Error.Type)
	require.Contains(t, body.Error.Message, "already executed")
	require.Equal(t, 1, pendingExecuteTasks(t, r))

	systemtest.Start(t, systemtest.Config(r.URL), system.Roles{Worker: true})
	require.Equal(t, "completed", c.waitStatus(created.ID).Status)
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+created.ID+"/details", nil, &details))
	require.Equal(t, "say this back", details["result"].(map[string]any)["output"])
	require.EqualValues(t, 1, details["attempts"])

	require.Equal(t, http.StatusConflict, c.do("POST", "/agent/v1/run/"+created.ID+"/exec", nil, &body))
	require.Equal(t, "run_not_queued", body.Error.Code)
	require.Contains(t, body.Error.Message, "is completed")

	// An execute's run is queued as it is made: exec refuses it too.
	var resp executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "x", "model": "builtin/echo"}, &resp))
	require.Equal(t, http.StatusConflict, c.do("POST", "/agent/v1/run/"+resp.RunID+"/exec", nil, &body))
	require.Equal(t, http.StatusNotFound, c.do("POST", "/agent/v1/run/run_nothere/exec", nil, &body))
	require.Equal(t, "not_found", body.Error.Code)
}

func TestCreateRunValidation(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	a := c.createAgent(map[string]any{"name": "echo", "instructions": "Repeat.", "model": "builtin/echo"})
	deleted := c.createAgent(map[string]any{"name": "gone", "instructions": "x", "model": "builtin/echo"})
	require.Equal(t, http.StatusOK, c.do("DELETE", "/agent/v1/agents/"+deleted.ID, nil, nil))

	tests := []struct {
		name     string
		body     map[string]any
		wantCode int
		param    string
		errCode  string
		contains string
	}{
		{name: "agentId missing", body: map[string]any{"prompt": "x"}, wantCode: 400, param: "agentId", errCode: "missing_field"},
		{name: "prompt missing", body: map[string]any{"agentId": a.ID}, wantCode: 400, param: "prompt", errCode: "missing_field"},
		{name: "prompt empty", body: map[string]any{"agentId": a.ID, "prompt": " "}, wantCode: 400, param: "prompt", errCode: "empty_field"},
		{name: "prompt not a string", body: map[string]any{"agentId": a.ID, "prompt": 3}, wantCode: 400, param: "prompt", errCode: "invalid_type"},
		{name: "empty object id", body: map[string]any{"agentId": a.ID, "prompt": "x", "objectIds": []string{""}}, wantCode: 400, param: "objectIds", errCode: "invalid_field"},
		{name: "unknown agent", body: map[string]any{"agentId": "agent_nope", "prompt": "x"}, wantCode: 404, errCode: "not_found", contains: "agent_nope"},
		{name: "deleted agent", body: map[string]any{"agentId": deleted.ID, "prompt": "x"}, wantCode: 409, param: "agentId", errCode: "agent_deleted"},
		{name: "model not configured", body: map[string]any{"agentId": a.ID, "prompt": "x", "model": "anthropic/claude-sonnet-4.6"}, wantCode: 400, param: "model", errCode: "model_not_configured"},
		{name: "callback not https", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "http://93.184.216.34/hook"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url", contains: "https"},
		{name: "callback private", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://10.1.2.3/hook"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url", contains: "private"},
		{name: "callback loopback", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://127.0.0.1:8443/hook"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url", contains: "loopback"},
		{name: "callback localhost", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://localhost/hook"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url", contains: "loopback"},
		{name: "callback link-local", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://169.254.169.254/latest"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url"},
		{name: "callback cgnat", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://100.64.0.1/"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url"},
		{name: "callback ipv6 ula", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://[fd00::1]/"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url"},
		{name: "callback mapped", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://[::ffff:192.168.0.1]/"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url"},
		{name: "callback ipv6 loopback", body: map[string]any{"agentId": a.ID, "prompt": "x", "callbackUrl": "https://[::1]/"}, wantCode: 400, param: "callbackUrl", errCode: "invalid_callback_url"},
		{name: "valid with model override", body: map[string]any{"agentId": a.ID, "prompt": "x", "model": "builtin/script", "callbackUrl": "https://93.184.216.34/hook"}, wantCode: 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body errorBody
			code := c.do("POST", "/agent/v1/run", tt.body, &body)
			require.Equal(t, tt.wantCode, code, "%+v", body)
			if code == 201 {
				return
			}
			require.Equal(t, tt.param, body.Error.Param)
			require.Equal(t, tt.errCode, body.Error.Code)
			require.NotEmpty(t, body.Error.Message)
			require.Contains(t, body.Error.Message, tt.contains)
		})
	}
}

func TestListRuns(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	alpha := c.createAgent(map[string]any{"name": "alpha", "instructions": "a", "model": "builtin/echo"})
	beta := c.createAgent(map[string]any{"name": "beta", "instructions": "b", "model": "builtin/echo"})

	long := strings.Repeat("é", 300) // 200 characters is 400 bytes
	var made []string                // oldest first
	for i := range 3 {
		made = append(made, c.createRun(map[string]any{"agentId": alpha.ID, "prompt": fmt.Sprintf("alpha %d %s", i, long)}).ID)
	}
	made = append(made, c.createRun(map[string]any{"agentId": beta.ID, "prompt": "beta 0"}).ID)
	var resp executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "an execute", "model": "builtin/echo"}, &resp))
	made = append(made, resp.RunID)
	c.exec(made[3])
	require.Equal(t, "completed", c.waitStatus(made[3]).Status)

	// All of them, two at a time, newest first.
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		var page runListAnswer
		path := "/agent/v1/run?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		require.Equal(t, http.StatusOK, c.do("GET", path, nil, &page))
		require.LessOrEqual(t, len(page.Runs), 2)
		for _, r := range page.Runs {
			got = append(got, r.ID)
		}
		if !page.HasMore {
			require.Nil(t, page.NextCursor)
			break
		}
		require.Equal(t, page.Runs[len(page.Runs)-1].ID, *page.NextCursor)
		cursor = *page.NextCursor
	}
	require.Equal(t, []string{made[4], made[3], made[2], made[1], made[0]}, got)

	var page runListAnswer
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run", nil, &page))
	require.Len(t, page.Runs, 5)
	require.False(t, page.HasMore)
	execRun, betaRun, alphaRun := page.Runs[0], page.Runs[1], page.Runs[4]
	require.Equal(t, "an execute", execRun.Prompt)
	require.Equal(t, "completed", execRun.Status)
	require.Equal(t, "completed", betaRun.Status)
	require.Equal(t, beta.ID, betaRun.AgentID)
	require.NotNil(t, betaRun.StartedAt)
	require.NotNil(t, betaRun.CompletedAt)
	require.Equal(t, "queued", alphaRun.Status)
	require.Nil(t, alphaRun.StartedAt)
	require.Equal(t, "builtin/echo", alphaRun.Model)
	require.Equal(t, 200, len([]rune(alphaRun.Prompt)), "the prompt's first 200 characters")
	require.True(t, strings.HasPrefix(alphaRun.Prompt, "alpha 0 éé"))

	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?agentId="+alpha.ID, nil, &page))
	require.Len(t, page.Runs, 3)
	for _, r := range page.Runs {
		require.Equal(t, alpha.ID, r.AgentID)
	}
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?status=completed", nil, &page))
	require.Len(t, page.Runs, 2)
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?status=queued&agentId="+alpha.ID+"&limit=1", nil, &page))
	require.Len(t, page.Runs, 1)
	require.True(t, page.HasMore)
	require.Equal(t, made[2], page.Runs[0].ID)
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?agentId="+resp.AgentID, nil, &page))
	require.Empty(t, page.Runs, "an execute's ephemeral agent has no listing")

	for _, tt := range []struct{ query, param, code string }{
		{"limit=0", "limit", "out_of_range"},
		{"limit=251", "limit", "out_of_range"},
		{"limit=ten", "limit", "out_of_range"},
		{"status=done", "status", "invalid_field"},
		{"agentId=bob", "agentId", "invalid_field"},
		{"cursor=nonsense", "cursor", "invalid_cursor"},
		{"cursor=run_notinthelisting", "cursor", "invalid_cursor"},
	} {
		var body errorBody
		require.Equal(t, http.StatusBadRequest, c.do("GET", "/agent/v1/run?"+tt.query, nil, &body), tt.query)
		require.Equal(t, tt.param, body.Error.Param, tt.query)
		require.Equal(t, tt.code, body.Error.Code, tt.query)
		require.Contains(t, body.Error.Message, tt.param, tt.query)
	}
}

// Another organization's run is not found by any run route, and listings
// hold the caller's runs only.
func TestRunRoutesAreScopedToTheOrganization(t *testing.T) {
	t.Parallel()
	c, _, _ := startWithKeys(t, nil)
	acme, globex := c.as(acmeKey), c.as(globexKey)
	a := acme.createAgent(map[string]any{"name": "echo", "instructions": "x", "model": "builtin/echo"})
	created := acme.createRun(map[string]any{"agentId": a.ID, "prompt": "acme's"})

	var body errorBody
	require.Equal(t, http.StatusNotFound, globex.do("POST", "/agent/v1/run", map[string]any{"agentId": a.ID, "prompt": "x"}, &body))
	for _, route := range []struct{ method, path string }{
		{"POST", "/exec"}, {"POST", "/cancel"}, {"GET", "/events"}, {"GET", "/status"}, {"GET", "/details"},
	} {
		require.Equal(t, http.StatusNotFound, globex.do(route.method, "/agent/v1/run/"+created.ID+route.path, nil, &body), route.path)
		require.Equal(t, "not_found", body.Error.Code)
	}
	require.Equal(t, http.StatusNotFound, globex.do("POST", "/agent/v1/run/"+created.ID+"/watch", map[string]any{"callbackUrl": "https://93.184.216.34/"}, &body))

	var page runListAnswer
	require.Equal(t, http.StatusOK, globex.do("GET", "/agent/v1/run", nil, &page))
	require.Empty(t, page.Runs)
	require.Equal(t, http.StatusBadRequest, globex.do("GET", "/agent/v1/run?cursor="+created.ID, nil, &body))
	require.Equal(t, http.StatusOK, acme.do("GET", "/agent/v1/run", nil, &page))
	require.Len(t, page.Runs, 1)
	require.Equal(t, "queued", acme.statusOf(created.ID))
}

// statusOf reads a run's status.
func (c *client) statusOf(id string) string {
	var st statusResponse
	require.Equal(c.t, http.StatusOK, c.do("GET", "/agent/v1/run/"+id+"/status", nil, &st))
	return st.Status
}

// `oneshot dev` runs on an embedded Redis (miniredis): the run lifecycle's
// scripts, pub/sub and listings work there too.
func TestRunLifecycleOnEmbeddedRedis(t *testing.T) {
	t.Parallel()
	cfg := systemtest.Config("")
	sys := systemtest.Start(t, cfg, system.Roles{API: true, Worker: true})
	require.True(t, sys.Embedded())
	c := newClient(t, sys.APIAddr)
	a := c.createAgent(map[string]any{"name": "echo", "instructions": "x", "model": "builtin/echo"})
	created := c.createRun(map[string]any{"agentId": a.ID, "prompt": "on miniredis"})
	stream := c.openEvents(t, "/agent/v1/run/"+created.ID+"/events", "")
	c.exec(created.ID)
	events := stream.Rest()
	require.NotEmpty(t, events)
	require.Equal(t, "run_end", events[len(events)-1].Event)
	require.Equal(t, "completed", c.waitStatus(created.ID).Status)

	prompt, marker := sleepScript()
	var resp executeResponse
	require.Equal(t, http.StatusAccepted, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": prompt, "model": "builtin/script", "agentRuntime": true}, &resp))
	require.Eventually(t, func() bool { return processWith(marker) }, 20*time.Second, 10*time.Millisecond)
	c.cancel(resp.RunID)
	require.Eventually(t, func() bool { return !processWith(marker) }, 10*time.Second, 5*time.Millisecond, "the sandbox's processes are gone after the cancel")

	var page runListAnswer
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?limit=1", nil, &page))
	require.Len(t, page.Runs, 1)
	require.Equal(t, resp.RunID, page.Runs[0].ID)
	require.Equal(t, "cancelled", page.Runs[0].Status)
	require.True(t, page.HasMore)
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?cursor="+*page.NextCursor, nil, &page))
	require.Len(t, page.Runs, 1)
	require.Equal(t, created.ID, page.Runs[0].ID)
}
