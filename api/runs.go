package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/oneshot-dev/oneshot/run"
)

type statusResponse struct {
	ID          string     `json:"id"`
	Status      run.Status `json:"status"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	DurationMs  *int64     `json:"durationMs"`
}

type detailsResponse struct {
	ID           string         `json:"id"`
	AgentID      string         `json:"agentId"`
	Status       run.Status     `json:"status"`
	Prompt       string         `json:"prompt"`
	Instructions string         `json:"instructions,omitempty"`
	Guidance     *string        `json:"guidance"`
	Model        string         `json:"model"`
	Tools        []string       `json:"tools"`
	Sandbox      any            `json:"sandbox"`
	Provider     string         `json:"provider"`
	RuntimeID    *string        `json:"runtimeId"`
	RuntimeState string         `json:"runtimeState"`
	Result       *detailsResult `json:"result"`
	Error        *string        `json:"error"`
	Usage        *detailsUsage  `json:"usage"`
	Steps        []run.Step     `json:"steps"`
	Attempts     int            `json:"attempts"`
	CreatedAt    time.Time      `json:"createdAt"`
	StartedAt    *time.Time     `json:"startedAt"`
	CompletedAt  *time.Time     `json:"completedAt"`
}

type detailsResult struct {
	Output          string      `json:"output"`
	OutputObjectIDs []string    `json:"outputObjectIds"`
	Logs            detailsLogs `json:"logs"`
}

type detailsLogs struct {
	Runtime string `json:"runtime"`
	Runner  string `json:"runner"`
}

type detailsUsage struct {
	run.Usage
	Summary usageSummary `json:"summary"`
}

type usageSummary struct {
	CostMicros        int64 `json:"costMicros"`
	TotalInputTokens  int   `json:"totalInputTokens"`
	TotalOutputTokens int   `json:"totalOutputTokens"`
	TotalTokens       int   `json:"totalTokens"`
}

// loadRun reads the run named in the path, or answers 404.
func (s *Server) loadRun(c echo.Context) (*run.Record, error) {
	id := c.Param("id")
	if !run.ValidID("run", id) {
		return nil, notFound("run", id)
	}
	rec, err := s.cfg.Store.Get(c.Request().Context(), id)
	if errors.Is(err, run.ErrNotFound) {
		return nil, notFound("run", id)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	if rec.Org != orgOf(c) {
		// Another organization's run: 404, not 403, so ids leak nothing.
		return nil, notFound("run", id)
	}
	return rec, nil
}

func (s *Server) runStatus(c echo.Context) error {
	rec, err := s.loadRun(c)
	if err != nil {
		return err
	}
	resp := statusResponse{ID: rec.ID, Status: rec.Status, StartedAt: timePtr(rec.StartedAt), CompletedAt: timePtr(rec.CompletedAt)}
	if d := rec.Duration(); d > 0 {
		ms := d.Milliseconds()
		resp.DurationMs = &ms
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) runDetails(c echo.Context) error {
	rec, err := s.loadRun(c)
	if err != nil {
		return err
	}
	resp := detailsResponse{
		ID:           rec.ID,
		AgentID:      rec.AgentID,
		Status:       rec.Status,
		Prompt:       rec.Spec.Prompt,
		Instructions: rec.Spec.Instructions,
		Model:        rec.Spec.Model,
		Tools:        rec.Spec.Tools,
		Sandbox:      rec.Spec.Sandbox,
		Provider:     rec.Provider,
		RuntimeState: string(rec.RuntimeState),
		Steps:        rec.Steps,
		Attempts:     rec.Attempts,
		CreatedAt:    rec.CreatedAt,
		StartedAt:    timePtr(rec.StartedAt),
		CompletedAt:  timePtr(rec.CompletedAt),
	}
	if resp.Steps == nil {
		resp.Steps = []run.Step{}
	}
	if rec.Spec.Guidance != "" {
		resp.Guidance = &rec.Spec.Guidance
	}
	if rec.RuntimeID != "" {
		resp.RuntimeID = &rec.RuntimeID
	}
	if rec.Error != "" {
		resp.Error = &rec.Error
	}
	if rec.Status.Terminal() {
		resp.Result = &detailsResult{Output: rec.Output, OutputObjectIDs: []string{}, Logs: detailsLogs{Runtime: rec.Logs.Runtime, Runner: rec.Logs.Runner}}
	}
	if rec.Usage != nil {
		u := detailsUsage{Usage: *rec.Usage}
		if u.Entries == nil {
			u.Entries = []run.UsageEntry{}
		}
		u.Summary = usageSummary{TotalInputTokens: u.InputTokens, TotalOutputTokens: u.OutputTokens, TotalTokens: u.InputTokens + u.OutputTokens}
		resp.Usage = &u
	}
	return c.JSON(http.StatusOK, resp)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
