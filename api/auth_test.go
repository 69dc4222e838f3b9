package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/api"
	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

const (
	acmeKey   = "key-acme-0123456789abcdef"
	globexKey = "key-globex-0123456789abcdef"
)

// startWithKeys starts a system whose settings hold a key for acme and one
// for globex.
func startWithKeys(t *testing.T, mutate func(*system.Config)) (*client, *system.System, *systemtest.Redis) {
	return startDev(t, func(cfg *system.Config) {
		cfg.APIKeys = []string{"acme:" + acmeKey, "globex:" + globexKey}
		if mutate != nil {
			mutate(cfg)
		}
	})
}

func TestAuthNeedsAKey(t *testing.T) {
	t.Parallel()
	c, _, _ := startWithKeys(t, func(cfg *system.Config) { cfg.Monitoring = "on" })

	tests := []struct {
		name, method, path string
		client             *client
		wantCode           int
		errCode            string
	}{
		{"no key", "POST", "/agent/v1/execute", c, 401, "missing_api_key"},
		{"wrong key", "POST", "/agent/v1/execute", c.as("key-nobody-0123456789abcdef"), 401, "invalid_api_key"},
		{"not bearer", "GET", "/agent/v1/agents", c.with("Authorization", acmeKey), 401, "missing_api_key"},
		{"unknown route needs a key too", "GET", "/agent/v1/nothing", c, 401, "missing_api_key"},
		{"monitoring needs a key", "GET", "/monitoring/", c, 401, "missing_api_key"},
		{"run status needs a key", "GET", "/agent/v1/run/run_x/status", c, 401, "missing_api_key"},
		{"health is open", "GET", "/healthz", c, 200, ""},
		{"readiness is open", "GET", "/readyz", c, 200, ""},
		{"metrics are open", "GET", "/metrics", c, 200, ""},
		{"with the key", "GET", "/agent/v1/agents", c.as(acmeKey), 200, ""},
		{"scheme is case-insensitive", "GET", "/agent/v1/agents", c.with("Authorization", "bearer "+acmeKey), 200, ""},
		{"monitoring with basic auth", "GET", "/monitoring/", c.with("Authorization", "Basic "+basic("", acmeKey)), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := *tt.client
			cl.t = t
			var body errorBody
			var out any = &body
			if tt.path == "/metrics" || tt.path == "/monitoring/" {
				out = nil // not JSON
			}
			require.Equal(t, tt.wantCode, cl.do(tt.method, tt.path, `{"prompt":"x","model":"builtin/echo"}`, out))
			if tt.errCode != "" && out != nil {
				require.Equal(t, "authentication_error", body.Error.Type)
				require.Equal(t, tt.errCode, body.Error.Code)
				require.Contains(t, body.Error.Message, "Authorization: Bearer <key>")
			}
		})
	}

	// Browsers are asked for Basic credentials on the Asynq UI.
	resp, err := http.Get(c.base + "/monitoring/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")[len("Basic "):]
}

// Runs and agents of one organization do not exist for another: 404, not 403.
func TestOrganizationsAreIsolated(t *testing.T) {
	t.Parallel()
	c, _, _ := startWithKeys(t, nil)
	acme, globex := c.as(acmeKey), c.as(globexKey)

	var resp executeResponse
	require.Equal(t, http.StatusOK, acme.do("POST", "/agent/v1/execute", map[string]any{"prompt": "secret plans", "model": "builtin/echo"}, &resp))
	agent := acme.createAgent(map[string]any{"name": "acme agent", "instructions": "i"})

	for _, path := range []string{"/agent/v1/run/" + resp.RunID + "/status", "/agent/v1/run/" + resp.RunID + "/details", "/agent/v1/agents/" + agent.ID} {
		var body errorBody
		require.Equal(t, http.StatusNotFound, globex.do("GET", path, nil, &body), path)
		require.Equal(t, "not_found", body.Error.Code)
		require.Equal(t, http.StatusOK, acme.do("GET", path, nil, nil), path)
	}
	var body errorBody
	require.Equal(t, http.StatusNotFound, globex.do("PATCH", "/agent/v1/agents/"+agent.ID, `{"name":"mine now"}`, &body))
	require.Equal(t, http.StatusNotFound, globex.do("DELETE", "/agent/v1/agents/"+agent.ID, nil, &body))
	require.Equal(t, http.StatusNotFound, globex.do("POST", "/agent/v1/execute", map[string]any{"prompt": "x", "agentId": agent.ID}, &body))
	require.Equal(t, "not_found", body.Error.Code)

	var list agentList
	require.Equal(t, http.StatusOK, globex.do("GET", "/agent/v1/agents", nil, &list))
	require.Empty(t, list.Agents)
	require.Equal(t, http.StatusOK, acme.do("GET", "/agent/v1/agents", nil, &list))
	require.Len(t, list.Agents, 1)
	require.Equal(t, "acme agent", list.Agents[0].Name)
}

// Keys made in Redis close an open server within the cache window, and a
// revoked key is refused within it.
func TestStoredKeysAndRevocation(t *testing.T) {
	t.Parallel()
	const window = 200 * time.Millisecond
	c, sys, r := startDev(t, func(cfg *system.Config) { cfg.AuthCacheTTL = window })
	ctx := context.Background()

	open, err := sys.API.Open(ctx)
	require.NoError(t, err)
	require.True(t, open)
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents", nil, nil), "open mode: no key needed")

	keys := api.NewKeyStore(r.Client(t))
	secret, info, err := keys.Create(ctx, "acme")
	require.NoError(t, err)
	require.Regexp(t, `^osk_[a-z2-7]{32}$`, secret)
	require.Equal(t, secret[:12], info.Prefix)

	require.Eventually(t, func() bool { return c.do("GET", "/agent/v1/agents", nil, nil) == http.StatusUnauthorized },
		5*time.Second, window/4, "a stored key closes the server")
	require.Equal(t, http.StatusOK, c.as(secret).do("GET", "/agent/v1/agents", nil, nil))
	n, err := sys.API.KeyCount(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	revoked, err := keys.Revoke(ctx, info.Prefix)
	require.NoError(t, err)
	require.Equal(t, info.ID, revoked.ID)
	// Once the cache window has passed, the next request is refused: no
	// bound on how fast the machine answers it.
	time.Sleep(window + 50*time.Millisecond)
	require.Equal(t, http.StatusUnauthorized, c.as(secret).do("GET", "/agent/v1/agents", nil, nil), "a revoked key is refused once the cache window has passed")

	// Revoking the last key does not open the server again.
	time.Sleep(2 * window)
	require.Equal(t, http.StatusUnauthorized, c.do("GET", "/agent/v1/agents", nil, nil))
	n, err = sys.API.KeyCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	c, _, _ := startWithKeys(t, func(cfg *system.Config) { cfg.RateLimit = 3 })

	get := func(key string) *http.Response {
		req, err := http.NewRequest("GET", c.base+"/agent/v1/agents", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range 3 {
		resp := get(acmeKey)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "3", resp.Header.Get("x-ratelimit-limit-requests"))
		require.Equal(t, strconv.Itoa(2-i), resp.Header.Get("x-ratelimit-remaining-requests"))
		reset, err := time.ParseDuration(resp.Header.Get("x-ratelimit-reset-requests"))
		require.NoError(t, err)
		require.InDelta(t, float64(20*(i+1)), reset.Seconds(), 1, "each request costs a minute/limit")
	}
	resp := get(acmeKey)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "0", resp.Header.Get("x-ratelimit-remaining-requests"))
	require.Equal(t, "3", resp.Header.Get("x-ratelimit-limit-requests"))
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, 20, retry, 1)
	var body errorBody
	require.NoError(t, jsonDecode(resp, &body))
	require.Equal(t, "rate_limit_error", body.Error.Type)
	require.Equal(t, "rate_limited", body.Error.Code)
	require.NotEmpty(t, body.Error.Message)

	// Each key has its own budget; health checks have none.
	require.Equal(t, http.StatusOK, get(globexKey).StatusCode)
	for range 5 {
		require.Equal(t, http.StatusOK, c.do("GET", "/healthz", nil, nil))
	}
}
