package api_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/tasks"
)

type cancelAnswer struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func (c *client) cancel(id string) cancelAnswer {
	c.t.Helper()
	var out cancelAnswer
	require.Equal(c.t, http.StatusOK, c.do("POST", "/agent/v1/run/"+id+"/cancel", nil, &out), "%+v", out)
	require.Equal(c.t, id, out.ID)
	return out
}

// sleepScript is a builtin/script prompt whose bash step sleeps, with a
// duration unique to the test so that its process can be found in /proc.
func sleepScript() (prompt, marker string) {
	marker = fmt.Sprintf("30.%06d", rand.IntN(1_000_000))
	return model.Script{Steps: []model.ScriptStep{
		{Tool: "bash", Input: []byte(`{"command":"sleep ` + marker + `"}`)},
		{Text: "woke up"},
	}}.Prompt(), marker
}

// processWith reports whether a process of this host has marker in its
// command line (sandboxed processes are visible from the host's /proc).
func processWith(marker string) bool {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(marker)) {
			return true
		}
	}
	return false
}

func TestCancelRunningRunKillsItsSandboxAndStaysCancelled(t *testing.T) {
	t.Parallel()
	c, _, r := startDev(t, nil)
	prompt, marker := sleepScript()
	var resp executeResponse
	require.Equal(t, http.StatusAccepted, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": prompt, "model": "builtin/script", "agentRuntime": true}, &resp))
	require.Eventually(t, func() bool { return processWith(marker) }, 20*time.Second, 10*time.Millisecond, "the sandbox runs the sleep")

	cancelled := time.Now()
	require.Equal(t, cancelAnswer{ID: resp.RunID, Status: "cancelled"}, c.cancel(resp.RunID))
	// Typically 10-20 ms; the bound is for a machine busy with other tests.
	require.Eventually(t, func() bool { return !processWith(marker) }, 10*time.Second, 5*time.Millisecond, "the sandbox's processes are gone after the cancel")
	t.Logf("sandbox gone %s after the cancel", time.Since(cancelled))

	st := c.waitStatus(resp.RunID)
	require.Equal(t, "cancelled", st.Status)
	require.NotNil(t, st.CompletedAt)

	// The task succeeded, so Asynq has nothing to retry; the record says
	// cancelled, with one attempt, and keeps saying it past the time a retry
	// would have come (the worker's retry delay is 1s).
	insp := asynq.NewInspectorFromRedisClient(r.Client(t))
	var last string
	completed := assert.Eventually(t, func() bool {
		info, err := insp.GetTaskInfo(tasks.QueueExecute, resp.RunID)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%s (retried %d, last error %q)", info.State, info.Retried, info.LastErr)
		return info.State == asynq.TaskStateCompleted
	}, 10*time.Second, 10*time.Millisecond)
	require.True(t, completed, "the execute task completed, not retried; it is %s", last)
	store := run.NewStore(run.StoreConfig{Redis: r.Client(t)})
	require.Never(t, func() bool {
		rec, err := store.Get(context.Background(), resp.RunID)
		return err != nil || rec.Status != run.StatusCancelled || rec.Attempts != 1
	}, 3*time.Second, 50*time.Millisecond)

	var details map[string]any
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+resp.RunID+"/details", nil, &details))
	require.Equal(t, "cancelled", details["status"])
	require.Equal(t, "ended", details["runtimeState"])
	require.Equal(t, run.CancelError, details["error"])
	require.EqualValues(t, 1, details["attempts"])
	logs := details["result"].(map[string]any)["logs"].(map[string]any)
	require.Contains(t, logs["runner"], "cancelled by request", "the stopped attempt's log is kept")

	// Cancel is idempotent.
	again := c.cancel(resp.RunID)
	require.Equal(t, "cancelled", again.Status)
	require.Equal(t, "the run was already cancelled", again.Message)
}

// A sync execute waiting for a run that is cancelled answers with it.
func TestCancelAnswersAWaitingSyncExecute(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	sys := systemtest.Start(t, systemtest.Config(r.URL), system.Roles{API: true, Worker: true})
	c := newClient(t, sys.APIAddr)
	prompt, marker := sleepScript()
	answered := make(chan executeResponse, 1)
	go func() {
		var resp executeResponse
		c.do("POST", "/agent/v1/execute", map[string]any{"prompt": prompt, "model": "builtin/script"}, &resp)
		answered <- resp
	}()
	require.Eventually(t, func() bool { return processWith(marker) }, 20*time.Second, 10*time.Millisecond)
	var page runListAnswer
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run?status=running", nil, &page))
	require.Len(t, page.Runs, 1)
	c.cancel(page.Runs[0].ID)
	select {
	case resp := <-answered:
		require.Equal(t, page.Runs[0].ID, resp.RunID)
		require.Equal(t, "cancelled", resp.Status)
		require.NotNil(t, resp.Error)
		require.Equal(t, run.CancelError, *resp.Error)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting execute did not answer")
	}
}

// A queued run that is cancelled never starts, even when a worker comes.
func TestCancelQueuedRunNeverStarts(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	api := systemtest.Start(t, systemtest.Config(r.URL), system.Roles{API: true})
	c := newClient(t, api.APIAddr)

	var resp executeResponse
	require.Equal(t, http.StatusAccepted, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "never", "model": "builtin/echo", "agentRuntime": true}, &resp))
	require.Equal(t, 1, pendingExecuteTasks(t, r))
	require.Equal(t, cancelAnswer{ID: resp.RunID, Status: "cancelled"}, c.cancel(resp.RunID))
	require.Zero(t, pendingExecuteTasks(t, r), "its task is deleted")

	// A created run, cancelled before exec, cannot be executed.
	a := c.createAgent(map[string]any{"name": "echo", "instructions": "x", "model": "builtin/echo"})
	created := c.createRun(map[string]any{"agentId": a.ID, "prompt": "never either"})
	c.cancel(created.ID)
	var body errorBody
	require.Equal(t, http.StatusConflict, c.do("POST", "/agent/v1/run/"+created.ID+"/exec", nil, &body))
	require.Equal(t, "run_not_queued", body.Error.Code)
	require.Contains(t, body.Error.Message, "is cancelled")

	// A worker comes and runs what is queued after them; not the cancelled runs.
	systemtest.Start(t, systemtest.Config(r.URL), system.Roles{Worker: true})
	var later executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "later", "model": "builtin/echo"}, &later))
	require.Equal(t, "completed", later.Status)
	store := run.NewStore(run.StoreConfig{Redis: r.Client(t)})
	for _, id := range []string{resp.RunID, created.ID} {
		rec, err := store.Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, run.StatusCancelled, rec.Status)
		require.Zero(t, rec.Attempts)
		require.True(t, rec.StartedAt.IsZero())
	}
	var st statusResponse
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+resp.RunID+"/status", nil, &st))
	require.Equal(t, "cancelled", st.Status)
	require.Nil(t, st.StartedAt)
	require.NotNil(t, st.CompletedAt)
	require.Nil(t, st.DurationMs)
}

func TestCancelFinishedRun(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	var resp executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "done", "model": "builtin/echo"}, &resp))
	require.Equal(t, "completed", resp.Status)
	out := c.cancel(resp.RunID)
	require.Equal(t, "completed", out.Status)
	require.Contains(t, out.Message, "already ended (completed)")
	require.Equal(t, "completed", c.waitStatus(resp.RunID).Status)

	var body errorBody
	require.Equal(t, http.StatusNotFound, c.do("POST", "/agent/v1/run/run_nothere/cancel", nil, &body))
	require.Equal(t, "not_found", body.Error.Code)
}

// A cancel whose announcement is lost (pub/sub is at-most-once) still stops
// the run: the worker polls the run's status.
func TestCancelWhoseAnnouncementIsLostStillStopsTheRun(t *testing.T) {
	t.Parallel()
	c, _, r := startDev(t, nil)
	prompt, marker := sleepScript()
	var resp executeResponse
	require.Equal(t, http.StatusAccepted, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": prompt, "model": "builtin/script", "agentRuntime": true}, &resp))
	require.Eventually(t, func() bool { return processWith(marker) }, 20*time.Second, 10*time.Millisecond)

	// Cancelled behind the workers' backs: no announcement.
	require.NoError(t, r.Client(t).HSet(context.Background(), "oneshot:run:{"+resp.RunID+"}", "status", "cancelled").Err())
	require.Eventually(t, func() bool { return !processWith(marker) }, 15*time.Second, 10*time.Millisecond, "the status poll stops the run")
	require.Equal(t, "cancelled", c.waitStatus(resp.RunID).Status)
}
