package run

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hash field names of a run record.
const (
	fID           = "id"
	fAgentID      = "agentId"
	fOrg          = "org"
	fMode         = "mode"
	fStatus       = "status"
	fSpec         = "spec"
	fProvider     = "provider"
	fRuntimeID    = "runtimeId"
	fRuntimeState = "runtimeState"
	fOutput       = "output"
	fError        = "error"
	fLogsRunner   = "logsRunner"
	fLogsRuntime  = "logsRuntime"
	fUsage        = "usage"
	fSteps        = "steps"
	fAttempts     = "attempts"
	fWorker       = "worker"
	fReplyTo      = "replyTo"
	fCreatedAt    = "createdAt"
	fStartedAt    = "startedAt"
	fCompletedAt  = "completedAt"
	fEventSeq     = "eventSeq"
	fCallbacks    = "callbacks" // newline-separated URLs
	fExecAt       = "execAt"
	fPromptHead   = "promptHead" // the first characters of the prompt, for listings
	fModel        = "model"
)

// promptHeadRunes is how much of the prompt listings show.
const promptHeadRunes = 200

func promptHead(p string) string {
	n := 0
	for i := range p {
		if n == promptHeadRunes {
			return p[:i]
		}
		n++
	}
	return p
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// encodeNew returns the hash fields of a record being created.
func encodeNew(r *Record) ([]any, error) {
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	execAt := r.ExecAt
	if execAt.IsZero() && r.Mode != ModeRun {
		execAt = r.CreatedAt // an execute is queued as it is created
	}
	return []any{
		fID, r.ID,
		fAgentID, r.AgentID,
		fOrg, r.Org,
		fMode, string(r.Mode),
		fStatus, string(r.Status),
		fSpec, spec,
		fProvider, r.Provider,
		fRuntimeState, string(r.RuntimeState),
		fReplyTo, r.ReplyTo,
		fCreatedAt, formatTime(r.CreatedAt),
		fAttempts, 0,
		fCallbacks, strings.Join(r.Callbacks, "\n"),
		fExecAt, formatTimeOrEmpty(execAt),
		fPromptHead, promptHead(r.Spec.Prompt),
		fModel, r.Spec.Model,
	}, nil
}

func formatTimeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

func splitCallbacks(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// encodeResult returns the hash fields a finished attempt writes.
func encodeResult(res *Result, completedAt time.Time) ([]any, error) {
	usage, err := json.Marshal(res.Usage)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	steps, err := json.Marshal(res.Steps)
	if err != nil {
		return nil, fmt.Errorf("encode steps: %w", err)
	}
	fields := []any{
		fStatus, string(res.Status),
		fRuntimeState, string(res.RuntimeState),
		fOutput, res.Output,
		fError, res.Error,
		fLogsRunner, res.Logs.Runner,
		fLogsRuntime, res.Logs.Runtime,
		fUsage, usage,
		fSteps, steps,
		fCompletedAt, formatTime(completedAt),
	}
	if res.Provider != "" {
		fields = append(fields, fProvider, res.Provider, fRuntimeID, res.RuntimeID)
	}
	return fields, nil
}

// decode builds a record from its hash fields.
func decode(h map[string]string) (*Record, error) {
	r := &Record{
		ID:           h[fID],
		AgentID:      h[fAgentID],
		Org:          h[fOrg],
		Mode:         Mode(h[fMode]),
		Status:       Status(h[fStatus]),
		Provider:     h[fProvider],
		RuntimeID:    h[fRuntimeID],
		RuntimeState: RuntimeState(h[fRuntimeState]),
		Output:       h[fOutput],
		Error:        h[fError],
		Logs:         Logs{Runner: h[fLogsRunner], Runtime: h[fLogsRuntime]},
		Worker:       h[fWorker],
		ReplyTo:      h[fReplyTo],
		CreatedAt:    parseTime(h[fCreatedAt]),
		StartedAt:    parseTime(h[fStartedAt]),
		CompletedAt:  parseTime(h[fCompletedAt]),
		ExecAt:       parseTime(h[fExecAt]),
		Callbacks:    splitCallbacks(h[fCallbacks]),
	}
	r.Attempts, _ = strconv.Atoi(h[fAttempts])
	if s := h[fSpec]; s != "" {
		if err := json.Unmarshal([]byte(s), &r.Spec); err != nil {
			return nil, fmt.Errorf("decode spec of %s: %w", r.ID, err)
		}
	}
	if s := h[fUsage]; s != "" {
		r.Usage = new(Usage)
		if err := json.Unmarshal([]byte(s), r.Usage); err != nil {
			return nil, fmt.Errorf("decode usage of %s: %w", r.ID, err)
		}
	}
	if s := h[fSteps]; s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &r.Steps); err != nil {
			return nil, fmt.Errorf("decode steps of %s: %w", r.ID, err)
		}
	}
	return r, nil
}

// pairsToMap turns a flat HGETALL-style reply into a map.
func pairsToMap(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		m[k] = val
	}
	return m, nil
}
