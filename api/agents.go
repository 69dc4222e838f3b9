package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/oneshot-dev/oneshot/run"
)

// AgentSource gives the run spec of a persistent agent: its instructions,
// model, tools and sandbox, with the server's defaults applied and checked
// against its rules. The caller adds the prompt, guidance and objects, and
// applies a run's own overrides. *Server implements it.
type AgentSource interface {
	RunSpec(ctx context.Context, org, agentID string) (run.Spec, error)
}

// Errors of AgentSource.RunSpec, for errors.Is. The errors RunSpec returns
// are also API errors: a handler may return them as they are (404 for
// ErrAgentNotFound, 409 for ErrAgentInactive, 400 for settings the server no
// longer accepts, such as a model without a provider, 503 for Redis).
var (
	// ErrAgentNotFound: no such agent in the caller's organization.
	ErrAgentNotFound = run.ErrAgentNotFound
	// ErrAgentInactive: the agent was deleted; no new runs.
	ErrAgentInactive = errors.New("agent deleted")
)

var _ AgentSource = (*Server)(nil)

// RunSpec returns the spec a run of a persistent agent starts from.
func (s *Server) RunSpec(ctx context.Context, org, agentID string) (run.Spec, error) {
	a, err := s.activeAgent(ctx, org, agentID)
	if err != nil {
		return run.Spec{}, err
	}
	return s.specOf(settingsOf(a))
}

// activeAgent reads an agent that runs can be made of.
func (s *Server) activeAgent(ctx context.Context, org, id string) (*run.Agent, error) {
	a, err := s.loadAgent(ctx, org, id)
	if err != nil {
		return nil, err
	}
	if !a.Active {
		return nil, &agentError{kind: ErrAgentInactive, api: &Error{Status: http.StatusConflict, Type: typeConflict, Code: "agent_deleted", Param: "agentId",
			Message: fmt.Sprintf("agent %q was deleted; runs can no longer be made of it", id)}}
	}
	return a, nil
}

// loadAgent reads an agent of the organization, deleted ones included.
func (s *Server) loadAgent(ctx context.Context, org, id string) (*run.Agent, error) {
	if !run.ValidID("agent", id) {
		return nil, &agentError{kind: ErrAgentNotFound, api: notFound("agent", id)}
	}
	a, err := s.cfg.Store.GetAgent(ctx, org, id)
	if errors.Is(err, run.ErrAgentNotFound) {
		// Another organization's agent is not found either: ids leak nothing.
		return nil, &agentError{kind: ErrAgentNotFound, api: notFound("agent", id)}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return a, nil
}

// agentError is an API error that also matches ErrAgentNotFound or
// ErrAgentInactive.
type agentError struct {
	kind error
	api  *Error
}

func (e *agentError) Error() string   { return e.api.Message }
func (e *agentError) Unwrap() []error { return []error{e.kind, e.api} }
