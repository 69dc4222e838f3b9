package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/oneshot-dev/oneshot/run"
)

type runSummary struct {
	ID          string     `json:"id"`
	AgentID     string     `json:"agentId"`
	Status      run.Status `json:"status"`
	Prompt      string     `json:"prompt"` // its first 200 characters
	Model       string     `json:"model"`
	CreatedAt   time.Time  `json:"createdAt"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
}

type runList struct {
	Runs       []runSummary `json:"runs"`
	HasMore    bool         `json:"hasMore"`
	NextCursor *string      `json:"nextCursor"`
}

// listRuns lists the caller's runs, newest first, executes included: by
// agent (a persistent agent's runs), by status, a page at a time. The cursor
// is the nextCursor of the previous page, a run id.
func (s *Server) listRuns(c echo.Context) error {
	q := run.ListQuery{Org: orgOf(c), Limit: 50}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 250 {
			return invalid("limit", "out_of_range", "query parameter limit is %q; it must be a whole number from 1 to 250 (default 50)", v)
		}
		q.Limit = n
	}
	if v := c.QueryParam("agentId"); v != "" {
		if !run.ValidID("agent", v) {
			return invalid("agentId", "invalid_field", "query parameter agentId is %q: give an agent id (agent_...)", v)
		}
		q.AgentID = v
	}
	if v := c.QueryParam("status"); v != "" {
		switch st := run.Status(v); st {
		case run.StatusQueued, run.StatusRunning, run.StatusCompleted, run.StatusFailed, run.StatusCancelled:
			q.Status = st
		default:
			return invalid("status", "invalid_field", "query parameter status is %q; it must be one of queued, running, completed, failed, cancelled", v)
		}
	}
	if v := c.QueryParam("cursor"); v != "" {
		if !run.ValidID("run", v) {
			return invalidCursor(v)
		}
		q.Cursor = v
	}
	page, err := s.cfg.Store.List(c.Request().Context(), q)
	if errors.Is(err, run.ErrBadCursor) {
		return invalidCursor(q.Cursor)
	}
	if err != nil {
		return unavailable(err)
	}
	out := runList{Runs: make([]runSummary, len(page.Runs)), HasMore: page.HasMore}
	for i, r := range page.Runs {
		out.Runs[i] = runSummary{ID: r.ID, AgentID: r.AgentID, Status: r.Status, Prompt: r.Prompt, Model: r.Model,
			CreatedAt: r.CreatedAt, StartedAt: timePtr(r.StartedAt), CompletedAt: timePtr(r.CompletedAt)}
	}
	if page.HasMore {
		out.NextCursor = &page.Next
	}
	return c.JSON(http.StatusOK, out)
}
