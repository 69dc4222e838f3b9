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

	"github.com/oneshot-dev/oneshot/run"
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
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	if !sc.Scan() {
		return fmt.Errorf("read task: %w", cmpErr(sc.Err(), io.ErrUnexpectedEOF))
	}
	var first ToRuntime
	if err := json.Unmarshal(sc.Bytes(), &first); err != nil || first.Type != TypeTask || first.Task == nil {
		return fmt.Errorf("read task: the first line must be a task message")
	}
	rt := &runtime{
		enc:       json.NewEncoder(out),
		pending:   map[string]chan ToRuntime{},
		workspace: workspace,
		diag:      diag,
	}
	go rt.readLoop(sc)
	res := rt.execute(ctx, first.Task)
	return rt.send(res)
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

type runtime struct {
	outMu sync.Mutex
	enc   *json.Encoder

	mu      sync.Mutex
	pending map[string]chan ToRuntime
	closed  error // set when the worker's side of stdin ends
	nextID  int

	workspace string
	diag      io.Writer
	steps     []run.Step
}

// send writes one message line.
func (rt *runtime) send(v any) error {
	rt.outMu.Lock()
	defer rt.outMu.Unlock()
	return rt.enc.Encode(v)
}

// emit writes an event: its type and fields on one line.
func (rt *runtime) emit(typ string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["type"] = typ
	if err := rt.send(fields); err != nil {
		fmt.Fprintf(rt.diag, "emit %s: %v\n", typ, err)
	}
}

// logf writes a line of the runtime log.
func (rt *runtime) logf(format string, args ...any) {
	rt.send(FromRuntime{Type: TypeLog, Line: fmt.Sprintf(format, args...)})
}

// readLoop hands each response to the request waiting for it.
func (rt *runtime) readLoop(sc *bufio.Scanner) {
	for sc.Scan() {
		var msg ToRuntime
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			fmt.Fprintf(rt.diag, "ignoring malformed input line: %v\n", err)
			continue
		}
		rt.mu.Lock()
		ch := rt.pending[msg.ID]
		delete(rt.pending, msg.ID)
		rt.mu.Unlock()
		if ch != nil {
			ch <- msg
		}
	}
	rt.mu.Lock()
	rt.closed = cmpErr(sc.Err(), errors.New("the worker closed the runtime's input"))
	for id, ch := range rt.pending {
		close(ch)
		delete(rt.pending, id)
	}
	rt.mu.Unlock()
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
	rt.pending[msg.ID] = ch
	rt.mu.Unlock()
	if err := rt.send(msg); err != nil {
		return ToRuntime{}, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return ToRuntime{}, rt.closed
		}
		return resp, nil
	case <-ctx.Done():
		return ToRuntime{}, ctx.Err()
	}
}

func (rt *runtime) step(s run.Step) {
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

