package dashboards_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// TestMonitoringBehindAPIKey: with API keys on, the Asynq UI needs the key
// (a browser sends it as Basic password), while /metrics, /healthz and
// /readyz stay open for Prometheus and probes.
func TestMonitoringBehindAPIKey(t *testing.T) {
	const key = "sk-ops-test-0123456789abcdef"
	cfg := systemtest.Config(systemtest.StartRedis(t).URL)
	cfg.Monitoring = "readonly"
	cfg.APIKeys = []string{"ops:" + key}
	base := "http://" + systemtest.Start(t, cfg, system.Roles{API: true}).APIAddr

	status := func(path string, auth func(*http.Request)) (int, http.Header) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		code, _ := status(path, nil)
		require.Equal(t, http.StatusOK, code, path)
	}
	for _, path := range []string{"/monitoring", "/monitoring/api/queues"} {
		code, h := status(path, nil)
		require.Equal(t, http.StatusUnauthorized, code, path)
		require.Contains(t, h.Get("WWW-Authenticate"), "Basic", "a browser asks for the key")
		code, _ = status(path, func(r *http.Request) { r.SetBasicAuth("", key) })
		require.Equal(t, http.StatusOK, code, path)
		code, _ = status(path, func(r *http.Request) { r.SetBasicAuth("", "sk-wrong-0123456789abcdef") })
		require.Equal(t, http.StatusUnauthorized, code, path)
	}
}
