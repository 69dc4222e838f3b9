package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/sandbox"
)

// executeRequest is the body of POST /agent/v1/execute. Unknown fields are
// ignored, as clients of newer API versions may send more.
type executeRequest struct {
	Prompt        *string       `json:"prompt"`
	Instructions  string        `json:"instructions"`
	Model         string        `json:"model"`
	VaultIDs      []string      `json:"vaultIds"`
	ObjectIDs     []string      `json:"objectIds"`
	Guidance      string        `json:"guidance"`
	EnabledTools  []string      `json:"enabledTools"`
	DisabledTools []string      `json:"disabledTools"`
	Sandbox       *sandboxSizes `json:"sandbox"`
	AgentRuntime  bool          `json:"agentRuntime"`
	// AgentID names a persistent agent whose settings the fields above
	// override (an extension of the reference API).
	AgentID string `json:"agentId"`
}

type sandboxSizes struct {
	CPU       *float64 `json:"cpu"`
	MemoryMiB *int     `json:"memoryMiB"`
}

// decodeJSON reads a JSON body into v, mapping every failure to a 400 (or the
// 413 of the body limit) that says what is wrong and where.
func decodeJSON(c echo.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeBody(body, v)
}

// readBody reads the whole request body, within the body limit.
func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var httpErr *echo.HTTPError
		if errors.As(err, &httpErr) {
			return nil, httpErr
		}
		return nil, invalid("", "invalid_json", "the request body could not be read: %v", err)
	}
	return body, nil
}

// decodeBody decodes a JSON body read by readBody into v.
func decodeBody(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return invalid("", "invalid_json", "the request body must hold exactly one JSON object")
		}
		return nil
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("", "invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return invalid("", "invalid_json", "the request body is not valid JSON: %v (at byte %d)", syntaxErr, syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "invalid_json", "the request body is not valid JSON: it ends too early")
	case errors.As(err, &typeErr):
		return typeError(typeErr)
	default:
		return invalid("", "invalid_json", "the request body could not be read: %v", err)
	}
}

// typeError says which field has the wrong JSON type.
func typeError(typeErr *json.UnmarshalTypeError) error {
	if typeErr.Field == "" {
		return invalid("", "invalid_json", "the request body must be a JSON object, not %s", typeErr.Value)
	}
	return invalid(typeErr.Field, "invalid_type", "field %s must be %s, not %s", typeErr.Field, jsonType(typeErr.Type.String()), typeErr.Value)
}

func jsonType(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.Contains(goType, "float") || strings.Contains(goType, "int"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	default:
		return "an object"
	}
}

// validateExecute checks a request and turns it into a run spec. With an
// agentId, the persistent agent's settings are the base and the request's
// fields override them.
func (s *Server) validateExecute(ctx context.Context, org string, req *executeRequest) (run.Spec, error) {
	if req.Prompt == nil {
		return run.Spec{}, invalid("prompt", "missing_field", "field prompt is required: the task to execute, as a string")
	}
	if strings.TrimSpace(*req.Prompt) == "" {
		return run.Spec{}, invalid("prompt", "empty_field", "field prompt is empty: give the task to execute")
	}
	if err := checkTools(req.EnabledTools, req.DisabledTools); err != nil {
		return run.Spec{}, err
	}
	if err := checkIDs("objectIds", req.ObjectIDs); err != nil {
		return run.Spec{}, err
	}
	var set runSettings
	if req.AgentID != "" {
		a, err := s.activeAgent(ctx, org, req.AgentID)
		if err != nil {
			return run.Spec{}, err
		}
		set = settingsOf(a)
	}
	set.override(req)
	spec, err := s.specOf(set)
	if err != nil {
		return run.Spec{}, err
	}
	spec.Prompt = *req.Prompt
	spec.Guidance = req.Guidance
	spec.ObjectIDs = req.ObjectIDs
	spec.Ephemeral = req.AgentID == ""
	return spec, nil
}

// runSettings are the agent settings a run is made from, before defaults:
// a persistent agent's, overridden by a request's.
type runSettings struct {
	Instructions  string
	Model         string
	VaultIDs      []string
	EnabledTools  []string
	DisabledTools []string
	Sandbox       sandboxSizes
}

func settingsOf(a *run.Agent) runSettings {
	set := runSettings{Instructions: a.Instructions, VaultIDs: a.VaultIDs, EnabledTools: a.EnabledTools, DisabledTools: a.DisabledTools}
	if a.Model != nil {
		set.Model = *a.Model
	}
	if a.Sandbox != nil {
		set.Sandbox = sandboxSizes{CPU: a.Sandbox.CPU, MemoryMiB: a.Sandbox.MemoryMiB}
	}
	return set
}

// override applies the fields an execute request sets. A tool list replaces
// both of the agent's, as they are mutually exclusive.
func (set *runSettings) override(req *executeRequest) {
	if req.Instructions != "" {
		set.Instructions = req.Instructions
	}
	if m := strings.TrimSpace(req.Model); m != "" {
		set.Model = m
	}
	if req.VaultIDs != nil {
		set.VaultIDs = req.VaultIDs
	}
	if len(req.EnabledTools) > 0 || len(req.DisabledTools) > 0 {
		set.EnabledTools, set.DisabledTools = req.EnabledTools, req.DisabledTools
	}
	if req.Sandbox != nil {
		if req.Sandbox.CPU != nil {
			set.Sandbox.CPU = req.Sandbox.CPU
		}
		if req.Sandbox.MemoryMiB != nil {
			set.Sandbox.MemoryMiB = req.Sandbox.MemoryMiB
		}
	}
}

// specOf checks settings against the server's rules and turns them into the
// agent part of a run spec (no prompt, guidance or objects).
func (s *Server) specOf(set runSettings) (run.Spec, error) {
	if err := checkTools(set.EnabledTools, set.DisabledTools); err != nil {
		return run.Spec{}, err
	}
	if err := checkIDs("vaultIds", set.VaultIDs); err != nil {
		return run.Spec{}, err
	}
	spec := run.Spec{
		Instructions:  set.Instructions,
		Model:         cmp.Or(strings.TrimSpace(set.Model), s.cfg.DefaultModel),
		VaultIDs:      set.VaultIDs,
		EnabledTools:  set.EnabledTools,
		DisabledTools: set.DisabledTools,
		Tools:         agent.SelectTools(set.EnabledTools, set.DisabledTools),
	}
	if err := s.checkModel(spec.Model); err != nil {
		return run.Spec{}, err
	}
	var err error
	if spec.Sandbox, err = s.validateSandbox(&set.Sandbox); err != nil {
		return run.Spec{}, err
	}
	return spec, nil
}

// checkTools checks an allow- or deny-list of tools: known names, not both.
func checkTools(enabled, disabled []string) error {
	if len(enabled) > 0 && len(disabled) > 0 {
		return invalid("enabledTools", "conflicting_fields", "enabledTools and disabledTools are mutually exclusive: send one of them")
	}
	for _, f := range []struct {
		param string
		names []string
	}{{"enabledTools", enabled}, {"disabledTools", disabled}} {
		for _, name := range f.names {
			if _, ok := agent.LookupTool(name); !ok {
				return invalid(f.param, "unknown_tool", "field %s: unknown tool %q; valid tools are %s", f.param, name, strings.Join(agent.ToolNames(), ", "))
			}
		}
	}
	return nil
}

// checkIDs checks a list of vault or object ids.
func checkIDs(param string, ids []string) error {
	if i := slices.IndexFunc(ids, func(id string) bool { return strings.TrimSpace(id) == "" }); i >= 0 {
		return invalid(param, "invalid_field", "field %s: element %d is empty; give ids or leave the field out", param, i)
	}
	return nil
}

// checkModel checks that the server can run a model.
func (s *Server) checkModel(name string) error {
	if _, err := s.cfg.Router.Resolve(name); err != nil {
		var nc *model.NotConfiguredError
		if errors.As(err, &nc) {
			return invalid("model", "model_not_configured", "%v on the server, or choose another model (builtin/echo needs no key)", err)
		}
		return invalid("model", "invalid_model", "%v", err)
	}
	return nil
}

// checkSandbox checks the sizes a request gives against the server's bounds.
func (s *Server) checkSandbox(sz *sandboxSizes) error {
	if sz == nil {
		return nil
	}
	if sz.CPU != nil && (*sz.CPU < s.cfg.MinCPU || *sz.CPU > s.cfg.MaxCPU) {
		return invalid("sandbox.cpu", "out_of_range", "field sandbox.cpu is %g; it must be between %g and %g", *sz.CPU, s.cfg.MinCPU, s.cfg.MaxCPU)
	}
	if sz.MemoryMiB != nil && (*sz.MemoryMiB < s.cfg.MinMemoryMiB || *sz.MemoryMiB > s.cfg.MaxMemoryMiB) {
		return invalid("sandbox.memoryMiB", "out_of_range", "field sandbox.memoryMiB is %d; it must be between %d and %d", *sz.MemoryMiB, s.cfg.MinMemoryMiB, s.cfg.MaxMemoryMiB)
	}
	return nil
}

func (s *Server) validateSandbox(sz *sandboxSizes) (sandbox.Spec, error) {
	if err := s.checkSandbox(sz); err != nil {
		return sandbox.Spec{}, err
	}
	spec := sandbox.Spec{}
	if sz != nil {
		if sz.CPU != nil {
			spec.CPU = *sz.CPU
		}
		if sz.MemoryMiB != nil {
			spec.MemoryMiB = *sz.MemoryMiB
		}
	}
	spec = spec.WithDefaults()
	// The defaults themselves must fit the configured bounds.
	spec.CPU = min(max(spec.CPU, s.cfg.MinCPU), s.cfg.MaxCPU)
	spec.MemoryMiB = min(max(spec.MemoryMiB, s.cfg.MinMemoryMiB), s.cfg.MaxMemoryMiB)
	return spec, nil
}
