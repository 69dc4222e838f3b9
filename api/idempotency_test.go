package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// countRuns counts the run records in a test's Redis.
func countRuns(t *testing.T, r *systemtest.Redis) int {
	t.Helper()
	keys, err := r.Client(t).Keys(context.Background(), "oneshot:run:{run_*}").Result()
	require.NoError(t, err)
	return len(keys)
}

type rawAnswer struct {
	code     int
	header   http.Header
	body     []byte
	response executeResponse
}

// post sends a body as is, with headers, from any goroutine.
func post(base, path, body string, header map[string]string) (rawAnswer, error) {
	req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
	if err != nil {
		return rawAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawAnswer{}, err
	}
	defer resp.Body.Close()
	a := rawAnswer{code: resp.StatusCode, header: resp.Header}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		return a, err
	}
	if a.code >= 300 {
		return a, nil // an error body
	}
	return a, json.Unmarshal(a.body, &a.response)
}

// Retries from 20 clients at once with one key make one run, and every client
// gets its result.
func TestIdempotentExecuteFromParallelClients(t *testing.T) {
	t.Parallel()
	c, _, r := startDev(t, nil)
	const n = 20
	body := `{"prompt":"only once","model":"builtin/echo"}`
	header := map[string]string{"Idempotency-Key": "order-42"}

	answers := make(chan rawAnswer, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			a, err := post(c.base, "/agent/v1/execute", body, header)
			answers <- a
			errs <- err
		})
	}
	wg.Wait()
	close(answers)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	runIDs, replays := map[string]int{}, 0
	for a := range answers {
		require.Equal(t, http.StatusOK, a.code, "%s", a.body)
		require.Equal(t, "completed", a.response.Status)
		require.Equal(t, "only once", *a.response.Output)
		runIDs[a.response.RunID]++
		if a.header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	require.Len(t, runIDs, 1, "one run id for all: %v", runIDs)
	require.Equal(t, n-1, replays)
	require.Equal(t, 1, countRuns(t, r))

	// A later retry, its JSON spelled differently, gets the same run.
	a, err := post(c.base, "/agent/v1/execute", `{ "model": "builtin/echo", "prompt": "only once" }`, header)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.code)
	for id := range runIDs {
		require.Equal(t, id, a.response.RunID)
	}

	// The same key with another request is refused.
	a, err = post(c.base, "/agent/v1/execute", `{"prompt":"something else","model":"builtin/echo"}`, header)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, a.code)
	var eb errorBody
	require.NoError(t, json.Unmarshal(a.body, &eb))
	require.Equal(t, "idempotency_key_reused", eb.Error.Code)
	require.Equal(t, "Idempotency-Key", eb.Error.Param)
	require.Equal(t, 1, countRuns(t, r))
}

func TestIdempotencyKeyScope(t *testing.T) {
	t.Parallel()
	c, _, r := startWithKeys(t, nil)
	body := `{"prompt":"p","model":"builtin/echo","agentRuntime":true}`
	key := func(apiKey string) map[string]string {
		return map[string]string{"Idempotency-Key": "k1", "Authorization": "Bearer " + apiKey}
	}

	// A request that fails validation claims nothing.
	a, err := post(c.base, "/agent/v1/execute", `{"model":"builtin/echo"}`, key(acmeKey))
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, a.code)

	first, err := post(c.base, "/agent/v1/execute", body, key(acmeKey))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, first.code, "%s", first.body)
	again, err := post(c.base, "/agent/v1/execute", body, key(acmeKey))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, again.code, "a legacy retry answers like the first")
	require.Equal(t, first.response.RunID, again.response.RunID)
	require.Contains(t, again.response.Message, "/agent/v1/run/"+first.response.RunID+"/status")

	// Keys are scoped by organization.
	other, err := post(c.base, "/agent/v1/execute", body, key(globexKey))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, other.code)
	require.NotEqual(t, first.response.RunID, other.response.RunID)
	require.Equal(t, 2, countRuns(t, r))

	a, err = post(c.base, "/agent/v1/execute", body, map[string]string{"Idempotency-Key": strings.Repeat("x", 256), "Authorization": "Bearer " + acmeKey})
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, a.code)
	require.Contains(t, string(a.body), "invalid_idempotency_key")
}
