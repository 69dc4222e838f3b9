package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/oneshot-dev/oneshot/run"
)

// agentRoutes adds the persistent agent routes.
//
// Deleting an agent is a soft delete: it leaves the listing, runs can no
// longer be made of it (409 agent_deleted), but GET by id still answers it,
// with isActive false, for as long as runs may name it (ONESHOT_RUN_RETENTION).
func (s *Server) agentRoutes(e *echo.Echo) {
	limit := middleware.BodyLimit(s.cfg.BodyLimit)
	e.POST("/agent/v1/agents", s.createAgent, limit)
	e.GET("/agent/v1/agents", s.listAgents)
	e.GET("/agent/v1/agents/:id", s.getAgent)
	e.PATCH("/agent/v1/agents/:id", s.patchAgent, limit)
	e.DELETE("/agent/v1/agents/:id", s.deleteAgent)
}

// agentRequest is the body of POST /agent/v1/agents.
type agentRequest struct {
	Name          *string       `json:"name"`
	Instructions  *string       `json:"instructions"`
	Description   *string       `json:"description"`
	Model         *string       `json:"model"`
	VaultIDs      []string      `json:"vaultIds"`
	EnabledTools  []string      `json:"enabledTools"`
	DisabledTools []string      `json:"disabledTools"`
	Sandbox       *sandboxSizes `json:"sandbox"`
}

// agentResponse is an agent as the API shows it; unset settings are null.
type agentResponse struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Description   *string           `json:"description"`
	Instructions  string            `json:"instructions"`
	Model         *string           `json:"model"`
	VaultIDs      []string          `json:"vaultIds"`
	EnabledTools  []string          `json:"enabledTools"`
	DisabledTools []string          `json:"disabledTools"`
	Sandbox       *run.AgentSandbox `json:"sandbox"`
	IsActive      bool              `json:"isActive"`
	CreatedAt     time.Time         `json:"createdAt"`
	UpdatedAt     time.Time         `json:"updatedAt"`
}

func agentOut(a *run.Agent) agentResponse {
	return agentResponse{ID: a.ID, Name: a.Name, Description: a.Description, Instructions: a.Instructions, Model: a.Model,
		VaultIDs: a.VaultIDs, EnabledTools: a.EnabledTools, DisabledTools: a.DisabledTools, Sandbox: a.Sandbox,
		IsActive: a.Active, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

type agentList struct {
	Agents     []agentResponse `json:"agents"`
	HasMore    bool            `json:"hasMore"`
	NextCursor *string         `json:"nextCursor"`
}

func (s *Server) createAgent(c echo.Context) error {
	var req agentRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	for _, f := range []struct {
		param string
		value *string
		what  string
	}{{"name", req.Name, "a name for the agent"}, {"instructions", req.Instructions, "the agent's system instructions"}} {
		if f.value == nil {
			return invalid(f.param, "missing_field", "field %s is required: %s, as a string", f.param, f.what)
		}
	}
	now := time.Now().UTC()
	a := &run.Agent{
		ID: run.NewID("agent"), Org: orgOf(c),
		Name: *req.Name, Instructions: *req.Instructions,
		Description: optional(req.Description), Model: optional(req.Model),
		VaultIDs: req.VaultIDs, EnabledTools: req.EnabledTools, DisabledTools: req.DisabledTools,
		CreatedAt: now, UpdatedAt: now,
	}
	if req.Sandbox != nil {
		a.Sandbox = &run.AgentSandbox{CPU: req.Sandbox.CPU, MemoryMiB: req.Sandbox.MemoryMiB}
	}
	if err := s.validateAgent(a); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateAgent(c.Request().Context(), a); err != nil {
		return unavailable(err)
	}
	return c.JSON(http.StatusCreated, agentOut(a))
}

func (s *Server) getAgent(c echo.Context) error {
	a, err := s.loadAgent(c.Request().Context(), orgOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, agentOut(a))
}

// patchAgent changes the fields the body sends; null clears an optional one.
// Sandbox sizes merge the same way, field by field.
func (s *Server) patchAgent(c echo.Context) error {
	var patch map[string]json.RawMessage
	if err := decodeJSON(c, &patch); err != nil {
		return err
	}
	if patch == nil {
		return invalid("", "invalid_json", "the request body must be a JSON object, not null")
	}
	id := c.Param("id")
	if _, err := s.loadAgent(c.Request().Context(), orgOf(c), id); err != nil {
		return err
	}
	a, err := s.cfg.Store.UpdateAgent(c.Request().Context(), orgOf(c), id, func(a *run.Agent) error {
		if !a.Active {
			return &Error{Status: http.StatusConflict, Type: typeConflict, Code: "agent_deleted",
				Message: fmt.Sprintf("agent %q was deleted; it can no longer change", id)}
		}
		if err := applyPatch(a, patch); err != nil {
			return err
		}
		a.UpdatedAt = time.Now().UTC()
		return s.validateAgent(a)
	})
	if err != nil {
		var apiErr *Error
		if errors.As(err, &apiErr) {
			return apiErr
		}
		if errors.Is(err, run.ErrAgentNotFound) {
			return notFound("agent", id)
		}
		return unavailable(err)
	}
	return c.JSON(http.StatusOK, agentOut(a))
}

func (s *Server) deleteAgent(c echo.Context) error {
	id := c.Param("id")
	a, err := s.loadAgent(c.Request().Context(), orgOf(c), id)
	if err != nil {
		return err
	}
	if a.Active {
		_, err = s.cfg.Store.UpdateAgent(c.Request().Context(), orgOf(c), id, func(a *run.Agent) error {
			a.Active = false
			a.UpdatedAt = time.Now().UTC()
			return nil
		})
		if errors.Is(err, run.ErrAgentNotFound) {
			return notFound("agent", id)
		}
		if err != nil {
			return unavailable(err)
		}
	}
	// Deleting a deleted agent is fine: DELETE is idempotent.
	return c.JSON(http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) listAgents(c echo.Context) error {
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 250 {
			return invalid("limit", "out_of_range", "query parameter limit is %q; it must be a whole number from 1 to 250 (default 50)", v)
		}
		limit = n
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" && !run.ValidID("agent", cursor) {
		return invalidCursor(cursor)
	}
	agents, more, err := s.cfg.Store.ListAgents(c.Request().Context(), orgOf(c), cursor, limit)
	if errors.Is(err, run.ErrAgentNotFound) {
		return invalidCursor(cursor)
	}
	if err != nil {
		return unavailable(err)
	}
	out := agentList{Agents: make([]agentResponse, len(agents)), HasMore: more}
	for i, a := range agents {
		out.Agents[i] = agentOut(a)
	}
	if more && len(agents) > 0 {
		out.NextCursor = &agents[len(agents)-1].ID
	}
	return c.JSON(http.StatusOK, out)
}

func invalidCursor(cursor string) *Error {
	return invalid("cursor", "invalid_cursor", "query parameter cursor is %q: pass the nextCursor of the previous page, or leave it out", cursor)
}

// validateAgent checks an agent's settings with the rules of execute.
func (s *Server) validateAgent(a *run.Agent) error {
	for _, f := range []struct {
		param string
		value *string
	}{{"name", &a.Name}, {"instructions", &a.Instructions}} {
		if strings.TrimSpace(*f.value) == "" {
			return invalid(f.param, "empty_field", "field %s is empty: it is required", f.param)
		}
	}
	if len(a.Name) > 256 {
		return invalid("name", "too_long", "field name is %d bytes long; at most 256", len(a.Name))
	}
	// An empty list is no list: it would not restrict anything.
	for _, l := range []*[]string{&a.VaultIDs, &a.EnabledTools, &a.DisabledTools} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if err := checkTools(a.EnabledTools, a.DisabledTools); err != nil {
		return err
	}
	if err := checkIDs("vaultIds", a.VaultIDs); err != nil {
		return err
	}
	if a.Model != nil {
		*a.Model = strings.TrimSpace(*a.Model)
		if err := s.checkModel(*a.Model); err != nil {
			return err
		}
	}
	if a.Sandbox != nil {
		if a.Sandbox.CPU == nil && a.Sandbox.MemoryMiB == nil {
			a.Sandbox = nil
		} else if err := s.checkSandbox(&sandboxSizes{CPU: a.Sandbox.CPU, MemoryMiB: a.Sandbox.MemoryMiB}); err != nil {
			return err
		}
	}
	return nil
}

// applyPatch applies a PATCH body to an agent. Unknown fields are ignored, as
// in every request.
func applyPatch(a *run.Agent, patch map[string]json.RawMessage) error {
	for _, f := range []struct {
		param string
		dst   *string
	}{{"name", &a.Name}, {"instructions", &a.Instructions}} {
		raw, ok := patch[f.param]
		if !ok {
			continue
		}
		if isNull(raw) {
			return invalid(f.param, "required_field", "field %s is required and cannot be cleared: send a new value, or leave the field out", f.param)
		}
		if err := patchValue(f.param, raw, f.dst); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		param string
		dst   **string
	}{{"description", &a.Description}, {"model", &a.Model}} {
		if raw, ok := patch[f.param]; ok {
			var v *string
			if err := patchValue(f.param, raw, &v); err != nil {
				return err
			}
			*f.dst = optional(v)
		}
	}
	for _, f := range []struct {
		param string
		dst   *[]string
	}{{"vaultIds", &a.VaultIDs}, {"enabledTools", &a.EnabledTools}, {"disabledTools", &a.DisabledTools}} {
		if raw, ok := patch[f.param]; ok {
			*f.dst = nil
			if err := patchValue(f.param, raw, f.dst); err != nil {
				return err
			}
		}
	}
	raw, ok := patch["sandbox"]
	switch {
	case !ok:
	case isNull(raw):
		a.Sandbox = nil
	default:
		var sz map[string]json.RawMessage
		if err := patchValue("sandbox", raw, &sz); err != nil {
			return err
		}
		if a.Sandbox == nil {
			a.Sandbox = &run.AgentSandbox{}
		}
		if raw, ok := sz["cpu"]; ok {
			a.Sandbox.CPU = nil
			if err := patchValue("sandbox.cpu", raw, &a.Sandbox.CPU); err != nil {
				return err
			}
		}
		if raw, ok := sz["memoryMiB"]; ok {
			a.Sandbox.MemoryMiB = nil
			if err := patchValue("sandbox.memoryMiB", raw, &a.Sandbox.MemoryMiB); err != nil {
				return err
			}
		}
	}
	return nil
}

// patchValue decodes one field of a PATCH body; null leaves dst at its zero.
func patchValue(param string, raw json.RawMessage, dst any) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return invalid(param, "invalid_type", "field %s must be %s, not %s", param, jsonType(typeErr.Type.String()), typeErr.Value)
		}
		return invalid(param, "invalid_json", "field %s: %v", param, err)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }

// optional turns an empty optional string into an unset one.
func optional(s *string) *string {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil
	}
	v := *s
	return &v
}
