package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/chat"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/sandbox"
)

var errDeadline = errors.New("run deadline exceeded")

// execute runs one attempt of a run in a sandbox and returns its result, or nil
// when the attempt must be handed back (the worker is going away), and for a
// failed run the reason, a label of oneshot_worker_run_failures_total. The
// caller must call destroy once the result is stored: the sandbox is torn down
// off the path of the client waiting for that result.
func (w *Worker) execute(ctx context.Context, rec *run.Record, log *slog.Logger) (res *run.Result, reason string, destroy func()) {
	start := time.Now()
	s := &session{
		w:       w,
		rec:     rec,
		log:     log,
		events:  newEventWriter(w.cfg.Store, rec.ID, log),
		usage:   run.Usage{Model: rec.Spec.Model},
		offered: agent.OfferedTools(rec.Spec.Tools),
		destroy: func() {},
	}
	res = s.run(ctx)
	if res == nil || res.Status == run.StatusCancelled {
		// Handed back, or cancelled (the cancel wrote run_end): written now.
		s.events.Close()
	} else {
		// Written by Finish, with the result: one round trip less.
		res.Events = s.events.Drain()
		res.Provider, res.RuntimeID = s.events.Runtime()
	}
	if res != nil {
		res.Usage = s.usage
		res.Usage.DurationMs = time.Since(start).Milliseconds()
		res.Logs = run.Logs{Runner: s.runner.String(), Runtime: s.runtime.String()}
	}
	return res, s.reason, s.destroy
}

// session is one attempt of one run: a sandbox and the conversation with the
// runtime inside it.
type session struct {
	w      *Worker
	rec    *run.Record
	log    *slog.Logger
	events *eventWriter
	sb     sandbox.Sandbox
	// destroy tears the sandbox down; a no-op until one is acquired.
	destroy func()

	offered []chat.Tool // the run's tools, as its model calls offer them

	runner  logBuffer // the worker's lines: logs.runner
	runtime logBuffer // the runtime's lines: logs.linc

	stdinMu sync.Mutex
	stdin   *json.Encoder

	mu        sync.Mutex
	usage     run.Usage
	turns     int
	result    *agent.FromRuntime
	protoErr  error
	budgetErr error
	reason    string // why the run failed, for metrics
}

func (s *session) runnerf(format string, args ...any) {
	s.runner.Add(time.Now().UTC().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...))
}

func (s *session) failed(reason string, state run.RuntimeState, format string, args ...any) *run.Result {
	msg := fmt.Sprintf(format, args...)
	s.reason = reason
	s.runnerf("run failed: %s", msg)
	return &run.Result{Status: run.StatusFailed, RuntimeState: state, Error: msg}
}

// cancelled is the result of an attempt stopped by a user's cancel.
func (s *session) cancelled() *run.Result {
	s.runnerf("run cancelled by request; sandbox destroyed")
	return &run.Result{Status: run.StatusCancelled, RuntimeState: run.RuntimeEnded, Error: run.CancelError}
}

func (s *session) run(ctx context.Context) *run.Result {
	rec, cfg := s.rec, s.w.cfg
	deadline := cfg.RunDeadline
	if rec.Spec.DeadlineMs > 0 {
		deadline = time.Duration(rec.Spec.DeadlineMs) * time.Millisecond
	}
	runCtx, cancel := context.WithTimeoutCause(ctx, deadline, errDeadline)
	defer cancel()

	s.runnerf("attempt %d on worker %s", rec.Attempts, cfg.ID)
	if rec.Attempts > 1 {
		s.runnerf("the previous attempt's worker was lost before it finished; running again")
	}
	spec := rec.Spec.Sandbox.WithDefaults()
	acquireStart := time.Now()
	sb, err := cfg.Pool.Acquire(runCtx, spec)
	if err != nil {
		if errors.Is(context.Cause(ctx), errCancelled) {
			return s.cancelled()
		}
		if ctx.Err() != nil && !errors.Is(context.Cause(runCtx), errDeadline) {
			return nil
		}
		reason := reasonSandbox
		if errors.Is(context.Cause(runCtx), errDeadline) {
			reason = reasonTimeout
		}
		return s.failed(reason, run.RuntimeError, "could not create a sandbox: %v", err)
	}
	s.sb = sb
	s.destroy = sync.OnceFunc(func() {
		if err := sb.Destroy(); err != nil {
			s.log.Error("destroy sandbox", "sandbox", sb.ID(), "err", err)
		}
	})
	driver := cfg.Pool.Driver().Name()
	s.runnerf("sandbox %s (%s, %g CPU, %d MiB) acquired in %s", sb.ID(), driver, spec.CPU, spec.MemoryMiB, time.Since(acquireStart).Round(time.Microsecond))

	// Kill the sandbox at the deadline or when the worker goes away; the
	// runtime's output then ends and the read loop below returns.
	stop := context.AfterFunc(runCtx, func() { sb.Destroy() })
	defer stop()

	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		s.copyStderr(sb.Stderr())
	}()

	s.stdin = json.NewEncoder(sb.Stdin())
	if err := s.send(agent.ToRuntime{Type: agent.TypeTask, Task: s.task()}); err != nil {
		s.runnerf("could not send the task to the runtime: %v", err)
	}
	// Recorded with the first events, or with the result of a short run: no
	// round trip of its own.
	s.events.SetRuntime(driver, sb.ID())
	s.readLoop(runCtx, sb.Stdout())
	sb.Stdin().Close()
	var exit sandbox.Exit
	if s.hasResult() && runCtx.Err() == nil && !sandbox.MemoryLimitHit(sb) {
		// The result is the runtime's last word: no need to wait for its exit.
		s.runnerf("result received; the sandbox is destroyed once the result is stored")
	} else {
		if s.hasResult() && runCtx.Err() == nil {
			// A process hit the memory limit: the run fails, even if the
			// runtime outran the kill of its sandbox.
			sb.Destroy()
		}
		exit = sb.Wait()
		<-stderrDone
		s.runnerf("runtime exited: %s", exit)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case errors.Is(context.Cause(ctx), errCancelled):
		return s.cancelled()
	case errors.Is(context.Cause(runCtx), errDeadline):
		return s.failed(reasonTimeout, run.RuntimeError, "timeout: the run exceeded its deadline of %s", deadline)
	case ctx.Err() != nil:
		return nil
	case s.protoErr != nil:
		return s.failed(reasonProtocol, run.RuntimeError, "runtime protocol error: %v", s.protoErr)
	case s.budgetErr != nil:
		return s.failed(reasonBudget, run.RuntimeEnded, "%v", s.budgetErr)
	case exit.OOMKilled:
		return s.failed(reasonOOM, run.RuntimeError, "%s", exit)
	case s.result == nil:
		return s.failed(reasonRuntime, run.RuntimeError, "the runtime exited without a result (%s)%s", exit, s.stderrTail())
	case s.result.Error != "":
		s.reason = reasonAgent
		return &run.Result{Status: run.StatusFailed, RuntimeState: run.RuntimeEnded, Error: s.result.Error, Output: s.result.Output, Steps: s.result.Steps}
	}
	return &run.Result{Status: run.StatusCompleted, RuntimeState: run.RuntimeEnded, Output: s.result.Output, Steps: s.result.Steps}
}

// task builds the runtime's task from the record.
func (s *session) task() *agent.Task {
	spec := s.rec.Spec
	t := &agent.Task{
		RunID:        s.rec.ID,
		Prompt:       spec.Prompt,
		Instructions: spec.Instructions,
		Guidance:     spec.Guidance,
		Model:        spec.Model,
		MaxTurns:     s.w.cfg.MaxTurns,
		MaxTokens:    s.w.cfg.MaxOutputTokens,
		Tools:        spec.Tools,
	}
	return t
}

func (s *session) hasResult() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result != nil
}

func (s *session) send(msg agent.ToRuntime) error {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	return s.stdin.Encode(msg)
}

// readLoop reads the runtime's lines until its output ends.
func (s *session) readLoop(ctx context.Context, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, agent.MaxLineBytes) // grows from 4 KB as long lines come
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if typ, ok := agent.LeadingType(line); ok && agent.IsEvent(typ) {
			// Most lines: stored whole, so checked, not decoded.
			if !json.Valid(line) {
				s.protocolError(fmt.Errorf("line %d is not a protocol message: %.200q", n, line))
				return
			}
			s.event(typ, line)
			continue
		}
		var msg agent.FromRuntime
		if err := json.Unmarshal(line, &msg); err != nil || msg.Type == "" {
			s.protocolError(fmt.Errorf("line %d is not a protocol message: %.200q", n, line))
			return
		}
		switch msg.Type {
		case agent.TypeLog:
			s.runtime.Add(msg.Line)
			s.events.Add(run.Event{Type: agent.TypeLog, Data: jsonObject("line", msg.Line)})
		case agent.TypeModelRequest:
			if msg.Request == nil {
				s.protocolError(fmt.Errorf("line %d: model_request without a request", n))
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.modelCall(ctx, msg.ID, msg.Request)
			}()
		case agent.TypeToolRequest:
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.hostTool(ctx, msg.ID, msg.Tool, msg.Input)
			}()
		case agent.TypeResult:
			s.mu.Lock()
			s.result = &msg
			s.mu.Unlock()
			return // the runtime's last message
		default:
			s.event(msg.Type, line)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, os.ErrClosed) {
		s.protocolError(fmt.Errorf("reading the runtime's output: %v", err))
	}
}

// event keeps an event line of the runtime in the run's stream.
func (s *session) event(typ string, line []byte) {
	if typ == agent.EventToolExecutionEnd {
		s.countToolCall(line)
	}
	s.events.Add(run.Event{Type: typ, Data: slices.Clone(line)})
}

// countToolCall counts a tool call from its tool_execution_end event: every
// tool call of the run, in the sandbox or on the host, ends with one.
func (s *session) countToolCall(line []byte) {
	var end struct {
		ToolName   string `json:"toolName"`
		IsError    bool   `json:"isError"`
		DurationMs int64  `json:"durationMs"`
	}
	if json.Unmarshal(line, &end) == nil {
		s.w.metrics.toolCall(end.ToolName, end.IsError, end.DurationMs)
	}
}

func (s *session) protocolError(err error) {
	s.mu.Lock()
	if s.protoErr == nil {
		s.protoErr = err
	}
	s.mu.Unlock()
	s.sb.Destroy()
}

// copyStderr keeps the runtime's diagnostics in the runner log.
func (s *session) copyStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		s.runnerf("runtime stderr: %s", sc.Text())
	}
}

func (s *session) stderrTail() string {
	lines := s.runner.Tail(3, "runtime stderr: ")
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, " | ")
}

// modelCall makes a model call for the runtime, inside the run's budgets.
func (s *session) modelCall(ctx context.Context, id string, req *model.Request) {
	s.mu.Lock()
	s.turns++
	turns, tokens := s.turns, s.usage.InputTokens+s.usage.OutputTokens
	s.mu.Unlock()
	cfg := s.w.cfg
	switch {
	case turns > cfg.MaxTurns:
		s.budget(id, fmt.Errorf("turn budget exhausted: the run made %d model calls (limit %d) without a final answer", turns-1, cfg.MaxTurns))
		return
	case tokens >= cfg.MaxTokens:
		s.budget(id, fmt.Errorf("token budget exhausted: the run used %d tokens (limit %d)", tokens, cfg.MaxTokens))
		return
	}
	// The record decides the model and the tools offered, not the sandbox.
	req.Model = s.rec.Spec.Model
	req.Tools = s.offered
	req.MaxTokens = min(cmpPositive(req.MaxTokens, cfg.MaxOutputTokens), cfg.MaxOutputTokens)
	provider, err := cfg.Router.Resolve(req.Model)
	if err != nil {
		s.send(agent.ToRuntime{Type: agent.TypeModelResponse, ID: id, Error: err.Error()})
		return
	}
	start := time.Now()
	resp, err := provider.Complete(ctx, *req, model.Hooks{
		DeltaFunc: func(d model.Delta) {
			s.events.Add(run.Event{Type: agent.EventMessageUpdate, Data: mustJSON(d)})
		},
		RetryFunc: func(r model.Retry) {
			s.runnerf("model %s: retry %d/%d in %dms: %s", req.Model, r.Attempt, r.MaxAttempts, r.DelayMs, r.Error)
			s.events.Add(run.Event{Type: agent.EventAutoRetryStart, Data: mustJSON(r)})
		},
	})
	elapsed := time.Since(start)
	if err != nil {
		s.runnerf("model %s: call failed after %s: %v", req.Model, elapsed.Round(time.Millisecond), err)
		s.send(agent.ToRuntime{Type: agent.TypeModelResponse, ID: id, Error: err.Error()})
		return
	}
	s.mu.Lock()
	s.usage.InputTokens += resp.Usage.InputTokens
	s.usage.OutputTokens += resp.Usage.OutputTokens
	for _, p := range resp.Content {
		if p.Type == model.PartToolCall {
			s.usage.ToolCalls++
		}
	}
	s.usage.Entries = append(s.usage.Entries, run.UsageEntry{
		ID:               fmt.Sprintf("use_%d", len(s.usage.Entries)+1),
		Kind:             "llm",
		Service:          provider.Name(),
		Model:            req.Model,
		PromptTokens:     resp.Usage.InputTokens,
		CompletionTokens: resp.Usage.OutputTokens,
		TotalTokens:      resp.Usage.InputTokens + resp.Usage.OutputTokens,
		DurationMs:       elapsed.Milliseconds(),
		Timestamp:        start.UTC(),
	})
	s.mu.Unlock()
	s.send(agent.ToRuntime{Type: agent.TypeModelResponse, ID: id, Response: resp})
}

// budget refuses a model call and ends the run: a runtime that keeps asking
// past its budget is stopped by the worker, whatever the runtime does.
func (s *session) budget(id string, err error) {
	s.mu.Lock()
	if s.budgetErr == nil {
		s.budgetErr = err
	}
	s.mu.Unlock()
	s.send(agent.ToRuntime{Type: agent.TypeModelResponse, ID: id, Error: err.Error()})
}

// hostTool runs a service tool for the runtime, if the run was offered it.
func (s *session) hostTool(ctx context.Context, id, name string, input json.RawMessage) {
	reply := func(out string, isErr bool) {
		s.send(agent.ToRuntime{Type: agent.TypeToolResponse, ID: id, Output: out, IsError: isErr})
	}
	spec, ok := agent.LookupTool(name)
	if !ok || !spec.Host || !slices.Contains(s.rec.Spec.Tools, name) {
		reply(fmt.Sprintf("tool %q is not available in this run", name), true)
		return
	}
	if s.w.cfg.HostTools == nil {
		reply(fmt.Sprintf("tool %q has no backend configured on this server", name), true)
		return
	}
	out, err := s.w.cfg.HostTools.Run(ctx, HostToolCall{
		RunID: s.rec.ID, Tool: name, Input: input,
		VaultIDs: s.rec.Spec.VaultIDs, ObjectIDs: s.rec.Spec.ObjectIDs,
	})
	if err != nil {
		reply(err.Error(), true)
		return
	}
	reply(out, false)
}

func cmpPositive(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func jsonObject(k string, v any) json.RawMessage { return mustJSON(map[string]any{k: v}) }
