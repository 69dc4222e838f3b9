package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/api"
)

type agentResponse struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Description   *string        `json:"description"`
	Instructions  string         `json:"instructions"`
	Model         *string        `json:"model"`
	VaultIDs      []string       `json:"vaultIds"`
	EnabledTools  []string       `json:"enabledTools"`
	DisabledTools []string       `json:"disabledTools"`
	Sandbox       map[string]any `json:"sandbox"`
	IsActive      bool           `json:"isActive"`
	CreatedAt     time.Time      `json:"createdAt"`
	UpdatedAt     time.Time      `json:"updatedAt"`
}

type agentList struct {
	Agents     []agentResponse `json:"agents"`
	HasMore    bool            `json:"hasMore"`
	NextCursor *string         `json:"nextCursor"`
}

func (c *client) createAgent(body map[string]any) agentResponse {
	c.t.Helper()
	var a agentResponse
	code := c.do("POST", "/agent/v1/agents", body, &a)
	require.Equal(c.t, http.StatusCreated, code, "%+v", a)
	return a
}

func TestAgentCRUD(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)

	created := c.createAgent(map[string]any{
		"name": "contract reviewer", "instructions": "You review contracts.", "description": "NDAs mostly",
		"model": "builtin/echo", "vaultIds": []string{"vault_1"}, "disabledTools": []string{"bash"},
		"sandbox": map[string]any{"cpu": 1, "memoryMiB": 512},
	})
	require.True(t, strings.HasPrefix(created.ID, "agent_"), created.ID)
	require.Equal(t, "contract reviewer", created.Name)
	require.Equal(t, "NDAs mostly", *created.Description)
	require.Equal(t, "builtin/echo", *created.Model)
	require.Equal(t, []string{"vault_1"}, created.VaultIDs)
	require.Equal(t, []string{"bash"}, created.DisabledTools)
	require.Nil(t, created.EnabledTools)
	require.Equal(t, map[string]any{"cpu": 1.0, "memoryMiB": 512.0}, created.Sandbox)
	require.True(t, created.IsActive)
	require.False(t, created.CreatedAt.IsZero())
	require.Equal(t, created.CreatedAt, created.UpdatedAt)

	var got agentResponse
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents/"+created.ID, nil, &got))
	require.Equal(t, created, got)

	// Only sent fields change; null clears an optional field, and sandbox
	// sizes merge field by field.
	var patched agentResponse
	require.Equal(t, http.StatusOK, c.do("PATCH", "/agent/v1/agents/"+created.ID,
		`{"description":null,"instructions":"You review NDAs.","sandbox":{"cpu":null},"unknownField":1}`, &patched))
	require.Nil(t, patched.Description)
	require.Equal(t, "You review NDAs.", patched.Instructions)
	require.Equal(t, "contract reviewer", patched.Name)
	require.Equal(t, "builtin/echo", *patched.Model)
	require.Equal(t, map[string]any{"memoryMiB": 512.0}, patched.Sandbox)
	require.Equal(t, []string{"bash"}, patched.DisabledTools)
	require.Equal(t, created.CreatedAt, patched.CreatedAt)
	require.True(t, patched.UpdatedAt.After(created.UpdatedAt))

	// Switching from a deny-list to an allow-list needs both in one PATCH.
	var body errorBody
	require.Equal(t, http.StatusBadRequest, c.do("PATCH", "/agent/v1/agents/"+created.ID, `{"enabledTools":["read"]}`, &body))
	require.Equal(t, "conflicting_fields", body.Error.Code)
	require.Equal(t, http.StatusOK, c.do("PATCH", "/agent/v1/agents/"+created.ID, `{"enabledTools":["read"],"disabledTools":null,"sandbox":null,"model":null}`, &patched))
	require.Equal(t, []string{"read"}, patched.EnabledTools)
	require.Nil(t, patched.DisabledTools)
	require.Nil(t, patched.Sandbox)
	require.Nil(t, patched.Model)

	// Soft delete: out of the listing and no more runs, but still readable.
	var ok map[string]any
	require.Equal(t, http.StatusOK, c.do("DELETE", "/agent/v1/agents/"+created.ID, nil, &ok))
	require.Equal(t, map[string]any{"ok": true}, ok)
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents/"+created.ID, nil, &got))
	require.False(t, got.IsActive)
	require.Equal(t, "contract reviewer", got.Name)
	var list agentList
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents", nil, &list))
	require.Empty(t, list.Agents)
	require.Equal(t, http.StatusConflict, c.do("PATCH", "/agent/v1/agents/"+created.ID, `{"name":"again"}`, &body))
	require.Equal(t, "agent_deleted", body.Error.Code)
	require.Equal(t, http.StatusConflict, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hi", "agentId": created.ID}, &body))
	require.Equal(t, "agent_deleted", body.Error.Code)
	require.Equal(t, http.StatusOK, c.do("DELETE", "/agent/v1/agents/"+created.ID, nil, &ok), "DELETE is idempotent")

	for _, method := range []string{"GET", "PATCH", "DELETE"} {
		require.Equal(t, http.StatusNotFound, c.do(method, "/agent/v1/agents/agent_doesnotexist", `{}`, &body), method)
		require.Equal(t, "not_found", body.Error.Code)
	}
}

func TestAgentValidation(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	a := c.createAgent(map[string]any{"name": "a", "instructions": "i"})

	tests := []struct {
		name, method, body string
		param, errCode     string
		contains           string
	}{
		{"name missing", "POST", `{"instructions":"i"}`, "name", "missing_field", "name is required"},
		{"instructions missing", "POST", `{"name":"n"}`, "instructions", "missing_field", ""},
		{"name empty", "POST", `{"name":" ","instructions":"i"}`, "name", "empty_field", ""},
		{"name not a string", "POST", `{"name":5,"instructions":"i"}`, "name", "invalid_type", "must be a string"},
		{"tools both", "POST", `{"name":"n","instructions":"i","enabledTools":["bash"],"disabledTools":["read"]}`, "enabledTools", "conflicting_fields", "mutually exclusive"},
		{"unknown tool", "POST", `{"name":"n","instructions":"i","enabledTools":["rm-rf"]}`, "enabledTools", "unknown_tool", "valid tools are"},
		{"cpu out of range", "POST", `{"name":"n","instructions":"i","sandbox":{"cpu":64}}`, "sandbox.cpu", "out_of_range", "between 0.25 and 8"},
		{"model not configured", "POST", `{"name":"n","instructions":"i","model":"anthropic/claude-sonnet-4.6"}`, "model", "model_not_configured", ""},
		{"empty vault id", "POST", `{"name":"n","instructions":"i","vaultIds":[""]}`, "vaultIds", "invalid_field", ""},
		{"patch clears name", "PATCH", `{"name":null}`, "name", "required_field", "cannot be cleared"},
		{"patch clears instructions", "PATCH", `{"instructions":null}`, "instructions", "required_field", ""},
		{"patch empties name", "PATCH", `{"name":""}`, "name", "empty_field", ""},
		{"patch wrong type", "PATCH", `{"vaultIds":"v"}`, "vaultIds", "invalid_type", "array"},
		{"patch memory wrong type", "PATCH", `{"sandbox":{"memoryMiB":"lots"}}`, "sandbox.memoryMiB", "invalid_type", ""},
		{"patch memory out of range", "PATCH", `{"sandbox":{"memoryMiB":1}}`, "sandbox.memoryMiB", "out_of_range", ""},
		{"patch not an object", "PATCH", `[1]`, "", "invalid_json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/agent/v1/agents"
			if tt.method == "PATCH" {
				path += "/" + a.ID
			}
			var body errorBody
			require.Equal(t, http.StatusBadRequest, c.do(tt.method, path, tt.body, &body), "%+v", body)
			require.Equal(t, tt.param, body.Error.Param)
			require.Equal(t, tt.errCode, body.Error.Code)
			require.Equal(t, "invalid_request_error", body.Error.Type)
			require.Contains(t, body.Error.Message, tt.contains)
		})
	}
	// A rejected PATCH changed nothing.
	var got agentResponse
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents/"+a.ID, nil, &got))
	require.Equal(t, a, got)
}

func TestAgentListPages(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	var ids []string
	for i := range 7 {
		ids = append(ids, c.createAgent(map[string]any{"name": fmt.Sprint("agent ", i), "instructions": "i"}).ID)
	}
	// An execute's ephemeral agent is never listed.
	var resp executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hi", "model": "builtin/echo"}, &resp))

	var seen []string
	cursor, pages := "", 0
	for {
		var page agentList
		require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents?limit=3"+cursor, nil, &page))
		pages++
		for _, a := range page.Agents {
			seen = append(seen, a.ID)
		}
		if !page.HasMore {
			require.Nil(t, page.NextCursor)
			break
		}
		require.Len(t, page.Agents, 3)
		require.Equal(t, page.Agents[2].ID, *page.NextCursor)
		cursor = "&cursor=" + *page.NextCursor
	}
	require.Equal(t, 3, pages)
	want := make([]string, len(ids))
	for i, id := range ids {
		want[len(ids)-1-i] = id // newest first
	}
	require.Equal(t, want, seen)
	require.NotContains(t, seen, resp.AgentID)

	// A deleted agent can still serve as a cursor.
	var ok map[string]any
	require.Equal(t, http.StatusOK, c.do("DELETE", "/agent/v1/agents/"+want[2], nil, &ok))
	var page agentList
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents?limit=2&cursor="+want[2], nil, &page))
	require.Equal(t, want[3:5], []string{page.Agents[0].ID, page.Agents[1].ID})
	var all agentList
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/agents", nil, &all))
	require.Len(t, all.Agents, 6)
	require.False(t, all.HasMore)

	for _, q := range []string{"limit=0", "limit=251", "limit=x", "cursor=nonsense", "cursor=agent_unknown"} {
		var body errorBody
		require.Equal(t, http.StatusBadRequest, c.do("GET", "/agent/v1/agents?"+q, nil, &body), q)
		require.NotEmpty(t, body.Error.Param, q)
	}
}

// A run of a persistent agent uses its settings; execute's fields override them.
func TestExecutePersistentAgent(t *testing.T) {
	t.Parallel()
	c, sys, _ := startDev(t, nil)
	a := c.createAgent(map[string]any{
		"name": "brief", "instructions": "Be brief.", "model": "builtin/echo",
		"enabledTools": []string{"read", "ls"}, "vaultIds": []string{"vault_a"},
		"sandbox": map[string]any{"cpu": 1, "memoryMiB": 512},
	})

	spec, err := sys.API.RunSpec(context.Background(), "", a.ID)
	require.NoError(t, err)
	require.Equal(t, "Be brief.", spec.Instructions)
	require.Equal(t, "builtin/echo", spec.Model)
	require.Equal(t, []string{"read", "ls"}, spec.Tools)
	require.Equal(t, []string{"vault_a"}, spec.VaultIDs)
	require.Equal(t, 1.0, spec.Sandbox.CPU)
	require.Equal(t, 512, spec.Sandbox.MemoryMiB)
	require.False(t, spec.Ephemeral)
	_, err = sys.API.RunSpec(context.Background(), "another-org", a.ID)
	require.ErrorIs(t, err, api.ErrAgentNotFound)

	var resp executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hi", "agentId": a.ID}, &resp))
	require.Equal(t, "completed", resp.Status)
	require.Equal(t, a.ID, resp.AgentID)
	var details map[string]any
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+resp.RunID+"/details", nil, &details))
	require.Equal(t, a.ID, details["agentId"])
	require.Equal(t, "Be brief.", details["instructions"])
	require.Equal(t, []any{"read", "ls"}, details["tools"])
	require.Equal(t, map[string]any{"cpu": 1.0, "memoryMiB": 512.0}, details["sandbox"])

	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{
		"prompt": "hi", "agentId": a.ID, "instructions": "Be thorough.", "disabledTools": []string{"bash"},
		"sandbox": map[string]any{"memoryMiB": 256},
	}, &resp))
	require.Equal(t, http.StatusOK, c.do("GET", "/agent/v1/run/"+resp.RunID+"/details", nil, &details))
	require.Equal(t, "Be thorough.", details["instructions"])
	require.NotContains(t, details["tools"], "bash")
	require.Contains(t, details["tools"], "vault.search")
	require.Equal(t, map[string]any{"cpu": 1.0, "memoryMiB": 256.0}, details["sandbox"])

	var body errorBody
	require.Equal(t, http.StatusNotFound, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "hi", "agentId": "agent_nope"}, &body))
	require.Equal(t, "not_found", body.Error.Code)
}
