package api

import (
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
}

type sandboxSizes struct {
	CPU       *float64 `json:"cpu"`
	MemoryMiB *int     `json:"memoryMiB"`
}

// decodeJSON reads a JSON body into v, mapping every failure to a 400 (or the
// 413 of the body limit) that says what is wrong and where.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return invalid("", "invalid_json", "the request body must hold exactly one JSON object")
		}
		return nil
	}
	var httpErr *echo.HTTPError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &httpErr):
		return httpErr
	case errors.Is(err, io.EOF):
		return invalid("", "invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return invalid("", "invalid_json", "the request body is not valid JSON: %v (at byte %d)", syntaxErr, syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "invalid_json", "the request body is not valid JSON: it ends too early")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalid("", "invalid_json", "the request body must be a JSON object, not %s", typeErr.Value)
		}
		return invalid(typeErr.Field, "invalid_type", "field %s must be %s, not %s", typeErr.Field, jsonType(typeErr.Type.String()), typeErr.Value)
	default:
		return invalid("", "invalid_json", "the request body could not be read: %v", err)
	}
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

// validateExecute checks a request and turns it into a run spec.
func (s *Server) validateExecute(req *executeRequest) (run.Spec, error) {
	if req.Prompt == nil {
		return run.Spec{}, invalid("prompt", "missing_field", "field prompt is required: the task to execute, as a string")
	}
	if strings.TrimSpace(*req.Prompt) == "" {
		return run.Spec{}, invalid("prompt", "empty_field", "field prompt is empty: give the task to execute")
	}
	if len(req.EnabledTools) > 0 && len(req.DisabledTools) > 0 {
		return run.Spec{}, invalid("enabledTools", "conflicting_fields", "enabledTools and disabledTools are mutually exclusive: send one of them")
	}
	for _, f := range []struct {
		param string
		names []string
	}{{"enabledTools", req.EnabledTools}, {"disabledTools", req.DisabledTools}} {
		for _, name := range f.names {
			if _, ok := agent.LookupTool(name); !ok {
				return run.Spec{}, invalid(f.param, "unknown_tool", "field %s: unknown tool %q; valid tools are %s", f.param, name, strings.Join(agent.ToolNames(), ", "))
			}
		}
	}
	for _, f := range []struct {
		param string
		ids   []string
	}{{"vaultIds", req.VaultIDs}, {"objectIds", req.ObjectIDs}} {
		if i := slices.IndexFunc(f.ids, func(id string) bool { return strings.TrimSpace(id) == "" }); i >= 0 {
			return run.Spec{}, invalid(f.param, "invalid_field", "field %s: element %d is empty; give ids or leave the field out", f.param, i)
		}
	}
	spec := run.Spec{
		Prompt:        *req.Prompt,
		Instructions:  req.Instructions,
		Guidance:      req.Guidance,
		Model:         strings.TrimSpace(req.Model),
		VaultIDs:      req.VaultIDs,
		ObjectIDs:     req.ObjectIDs,
		EnabledTools:  req.EnabledTools,
		DisabledTools: req.DisabledTools,
		Tools:         agent.SelectTools(req.EnabledTools, req.DisabledTools),
		Ephemeral:     true,
	}
	if spec.Model == "" {
		spec.Model = s.cfg.DefaultModel
	}
	if _, err := s.cfg.Router.Resolve(spec.Model); err != nil {
		var nc *model.NotConfiguredError
		if errors.As(err, &nc) {
			return run.Spec{}, invalid("model", "model_not_configured", "%v on the server, or choose another model (builtin/echo needs no key)", err)
		}
		return run.Spec{}, invalid("model", "invalid_model", "%v", err)
	}
	var err error
	if spec.Sandbox, err = s.validateSandbox(req.Sandbox); err != nil {
		return run.Spec{}, err
	}
	return spec, nil
}

func (s *Server) validateSandbox(sz *sandboxSizes) (sandbox.Spec, error) {
	spec := sandbox.Spec{}
	if sz != nil {
		if sz.CPU != nil {
			if *sz.CPU < s.cfg.MinCPU || *sz.CPU > s.cfg.MaxCPU {
				return spec, invalid("sandbox.cpu", "out_of_range", "field sandbox.cpu is %g; it must be between %g and %g", *sz.CPU, s.cfg.MinCPU, s.cfg.MaxCPU)
			}
			spec.CPU = *sz.CPU
		}
		if sz.MemoryMiB != nil {
			if *sz.MemoryMiB < s.cfg.MinMemoryMiB || *sz.MemoryMiB > s.cfg.MaxMemoryMiB {
				return spec, invalid("sandbox.memoryMiB", "out_of_range", "field sandbox.memoryMiB is %d; it must be between %d and %d", *sz.MemoryMiB, s.cfg.MinMemoryMiB, s.cfg.MaxMemoryMiB)
			}
			spec.MemoryMiB = *sz.MemoryMiB
		}
	}
	spec = spec.WithDefaults()
	// The defaults themselves must fit the configured bounds.
	spec.CPU = min(max(spec.CPU, s.cfg.MinCPU), s.cfg.MaxCPU)
	spec.MemoryMiB = min(max(spec.MemoryMiB, s.cfg.MinMemoryMiB), s.cfg.MaxMemoryMiB)
	return spec, nil
}
