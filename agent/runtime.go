package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oneshot-dev/oneshot/chat"
)

// DefaultInstructions is the system prompt of a run that gives none.
const DefaultInstructions = "You are a capable assistant that completes the task you are given. " +
	"You work in /workspace inside an isolated sandbox and may use the tools offered to you. " +
	"When you are done, answer with the final result only."

// Run is the runtime's main: it reads one task from in, runs the agent loop,
// writes events, requests and one result to out, and returns. Diagnostics go to
// diag. workspace is the folder the sandbox tools work in.
func Run(ctx context.Context, in io.Reader, out io.Writer, diag io.Writer, workspace string) error {
	hardenProcess()
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, MaxLineBytes) // grows from 4 KB as long lines come
	w := bufio.NewWriter(out)
	rt := &runtime{
		out:       w,
		enc:       json.NewEncoder(w),
		pending:   map[string]pendingRequest{},
		workspace: workspace,
		diag:      diag,
	}
	// A pooled runtime waits a while for its task: meanwhile it builds what
	// its first run would otherwise build on the client's path.
	go warmOnce.Do(warmUp)
	if !sc.Scan() {
		err := fmt.Errorf("read task: %w", cmpErr(sc.Err(), io.ErrUnexpectedEOF))
		rt.sendNow(FromRuntime{Type: TypeResult, Error: err.Error()})
		return err
	}
	var first ToRuntime
	if err := json.Unmarshal(sc.Bytes(), &first); err != nil || first.Type != TypeTask || first.Task == nil {
		err := errors.New("read task: the first line must be a task message")
		rt.sendNow(FromRuntime{Type: TypeResult, Error: err.Error()})
		return err
	}
	// When the worker closes the input, nobody is left to answer: the loop
	// stops, and so do its tools (a long bash command is killed).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go rt.readLoop(sc, cancel)
	res := rt.execute(ctx, first.Task)
	return rt.sendNow(res)
}

// warmUp round-trips each kind of protocol message through encoding/json,
// which builds a codec for each type the first time it meets it. In a fresh
// runtime process that took ~0.25 ms between a task's arrival and its first
// model request (measured with a process started 30 ms before its task).
func warmUp() {
	part := chat.Part{Type: chat.PartText, Text: "x"}
	msgs := []any{
		ToRuntime{Type: TypeTask, Task: &Task{RunID: "run_x", Prompt: "x", Tools: []string{"ls"}}},
		ToRuntime{Type: TypeModelResponse, ID: "m1", Response: &chat.Response{Content: []chat.Part{part}, StopReason: chat.StopEndTurn}},
		FromRuntime{Type: TypeModelRequest, ID: "m1", Request: &chat.Request{System: "x", Messages: []chat.Message{{Role: chat.RoleUser, Content: []chat.Part{part}}}}},
		FromRuntime{Type: TypeResult, Output: "x", Steps: []Step{{ID: "step_1", Type: "output", Content: "x", Timestamp: time.Now()}}},
		map[string]any{"turn": 1, "content": []chat.Part{part}, "usage": chat.Usage{}, "durationMs": int64(1), "error": ""},
	}
	for _, m := range msgs {
		b, err := json.Marshal(m)
		if err != nil {
			continue
		}
		switch m.(type) {
		case ToRuntime:
			json.Unmarshal(b, new(ToRuntime))
		case FromRuntime:
			json.Unmarshal(b, new(FromRuntime))
		}
	}
}

var warmOnce sync.Once

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

type runtime struct {
	outMu sync.Mutex
	out   *bufio.Writer // flushed whenever the runtime is about to wait
	enc   *json.Encoder // writes to out

	mu      sync.Mutex
	pending map[string]pendingRequest
	closed  error // set when the worker's side of stdin ends
	nextID  int

	workspace string
	diagMu    sync.Mutex
	diag      io.Writer
	steps     []Step
}

// pendingRequest waits for the response to one request.
type pendingRequest struct {
	want string // the response type that answers it
	ch   chan ToRuntime
}

// responseType maps a request type to the type of its response.
var responseType = map[string]string{
	TypeModelRequest: TypeModelResponse,
	TypeToolRequest:  TypeToolResponse,
}

// send writes one message line, to the output buffer. Lines are buffered
// until the runtime is about to wait (for the worker, a tool, or nothing
// more: flush), so that the worker reads a burst of events in one wake-up,
// and no line waits in the buffer while the runtime waits.
func (rt *runtime) send(v any) error {
	rt.outMu.Lock()
	defer rt.outMu.Unlock()
	return rt.enc.Encode(v)
}

// flush writes the buffered lines out.
func (rt *runtime) flush() error {
	rt.outMu.Lock()
	defer rt.outMu.Unlock()
	return rt.out.Flush()
}

// sendNow sends a line and flushes.
func (rt *runtime) sendNow(v any) error {
	if err := rt.send(v); err != nil {
		return err
	}
	return rt.flush()
}

// emit writes an event: its type, first (see LeadingType), and its fields on
// one line.
func (rt *runtime) emit(typ string, fields map[string]any) {
	body := []byte("{}")
	if len(fields) > 0 {
		var err error
		if body, err = json.Marshal(fields); err != nil {
			rt.diagf("emit %s: %v\n", typ, err)
			return
		}
	}
	rt.outMu.Lock()
	defer rt.outMu.Unlock()
	quoted, _ := json.Marshal(typ)
	rt.out.WriteString(`{"type":`)
	rt.out.Write(quoted)
	if len(body) > 2 {
		rt.out.WriteByte(',')
	}
	rt.out.Write(body[1:])
	rt.out.WriteByte('\n')
}

// diagf writes a line of diagnostics. The read loop and the agent loop both
// write them, so the writes are serialized.
func (rt *runtime) diagf(format string, args ...any) {
	rt.diagMu.Lock()
	defer rt.diagMu.Unlock()
	fmt.Fprintf(rt.diag, format, args...)
}

// logf writes a line of the runtime log.
func (rt *runtime) logf(format string, args ...any) {
	rt.send(FromRuntime{Type: TypeLog, Line: fmt.Sprintf(format, args...)})
}

// readLoop hands each response to the request waiting for it. Lines that are
// not JSON, answer no pending request, or answer it with the wrong type are
// skipped: the worker's input cannot crash or confuse the runtime. When the
// input ends, every pending request fails and ctx is cancelled.
func (rt *runtime) readLoop(sc *bufio.Scanner, cancel context.CancelCauseFunc) {
	for sc.Scan() {
		var msg ToRuntime
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			rt.diagf("ignoring malformed input line: %v\n", err)
			continue
		}
		rt.mu.Lock()
		p, ok := rt.pending[msg.ID]
		if ok && p.want == msg.Type {
			delete(rt.pending, msg.ID)
		}
		rt.mu.Unlock()
		switch {
		case !ok:
			rt.diagf("ignoring %.40q message: no pending request %.40q\n", msg.Type, msg.ID)
		case p.want != msg.Type:
			rt.diagf("ignoring %.40q message for request %s: want %s\n", msg.Type, msg.ID, p.want)
		default:
			p.ch <- msg // buffered, and each request is answered once
		}
	}
	err := cmpErr(sc.Err(), errors.New("the worker closed the runtime's input"))
	if errors.Is(err, bufio.ErrTooLong) {
		err = fmt.Errorf("an input line is over %d bytes", MaxLineBytes)
	}
	rt.mu.Lock()
	rt.closed = err
	for id, p := range rt.pending {
		close(p.ch)
		delete(rt.pending, id)
	}
	rt.mu.Unlock()
	cancel(err)
}

// request sends a request and waits for its response.
func (rt *runtime) request(ctx context.Context, msg FromRuntime) (ToRuntime, error) {
	ch := make(chan ToRuntime, 1)
	rt.mu.Lock()
	if rt.closed != nil {
		rt.mu.Unlock()
		return ToRuntime{}, rt.closed
	}
	rt.nextID++
	msg.ID = msg.Type[:1] + strconv.Itoa(rt.nextID)
	rt.pending[msg.ID] = pendingRequest{want: responseType[msg.Type], ch: ch}
	rt.mu.Unlock()
	forget := func() {
		rt.mu.Lock()
		delete(rt.pending, msg.ID)
		rt.mu.Unlock()
	}
	if err := rt.sendNow(msg); err != nil {
		forget()
		return ToRuntime{}, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return ToRuntime{}, rt.closed
		}
		return resp, nil
	case <-ctx.Done():
		forget()
		return ToRuntime{}, context.Cause(ctx)
	}
}

func (rt *runtime) step(s Step) {
	s.ID = "step_" + strconv.Itoa(len(rt.steps)+1)
	if s.Timestamp.IsZero() {
		s.Timestamp = time.Now().UTC()
	}
	rt.steps = append(rt.steps, s)
}

// Workspace returns the folder sandbox tools work in: ONESHOT_WORKSPACE, set
// by the sandbox, or the working directory.
func Workspace() string {
	if w := os.Getenv("ONESHOT_WORKSPACE"); w != "" {
		return w
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "/workspace"
}

// systemPrompt joins instructions and guidance.
func systemPrompt(t *Task) string {
	s := t.Instructions
	if strings.TrimSpace(s) == "" {
		s = DefaultInstructions
	}
	if g := strings.TrimSpace(t.Guidance); g != "" {
		s += "\n\nGuidance for this run:\n" + g
	}
	return s
}

// WireName maps an API tool name to a name every provider accepts:
// "vault.search" becomes "vault_search".
func WireName(name string) string { return strings.ReplaceAll(name, ".", "_") }
