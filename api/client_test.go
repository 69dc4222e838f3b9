package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// client talks to a test system over real HTTP.
type client struct {
	t      testing.TB
	base   string
	http   *http.Client
	header http.Header // sent with every request
}

func newClient(t testing.TB, addr string) *client {
	return &client{t: t, base: "http://" + addr, http: &http.Client{Timeout: time.Minute}}
}

// with returns a client that also sends the header.
func (c *client) with(key, value string) *client {
	d := *c
	d.header = c.header.Clone()
	if d.header == nil {
		d.header = http.Header{}
	}
	d.header.Set(key, value)
	return &d
}

// as returns a client that sends an API key.
func (c *client) as(key string) *client { return c.with("Authorization", "Bearer "+key) }

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *client) do(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(c.t, err)
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	if out != nil {
		require.NoError(c.t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return resp.StatusCode
}

type executeResponse struct {
	RunID        string  `json:"runId"`
	AgentID      string  `json:"agentId"`
	Status       string  `json:"status"`
	Provider     string  `json:"provider"`
	RuntimeID    *string `json:"runtimeId"`
	RuntimeState string  `json:"runtimeState"`
	Output       *string `json:"output"`
	Error        *string `json:"error"`
	Logs         *struct {
		Runner string `json:"runner"`
		Linc   string `json:"linc"`
	} `json:"logs"`
	Usage *struct {
		Model        string `json:"model"`
		InputTokens  int    `json:"inputTokens"`
		OutputTokens int    `json:"outputTokens"`
		ToolCalls    int    `json:"toolCalls"`
		DurationMs   int64  `json:"durationMs"`
	} `json:"usage"`
	Message string `json:"message"`
}

type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
		Param   string `json:"param"`
	} `json:"error"`
}

type statusResponse struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	DurationMs  *int64     `json:"durationMs"`
}

// waitStatus polls a run's status until it is terminal.
func (c *client) waitStatus(id string) statusResponse {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st statusResponse
		require.Equal(c.t, http.StatusOK, c.do("GET", "/agent/v1/run/"+id+"/status", nil, &st))
		switch st.Status {
		case "completed", "failed", "cancelled":
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("run %s still %s after 30s", id, st.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
