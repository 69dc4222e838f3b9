package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzWorker is the runtime's stdin and stdout in FuzzRuntime. It feeds the
// fuzzer's lines after a valid task, one at a time, and only while the
// runtime waits for an answer (or has finished): the real worker answers
// after it was asked, and a line that arrived earlier would be dropped as an
// answer to nothing, which would leave most of the loop unexplored.
type fuzzWorker struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending map[string]string // request id -> the response type it wants
	done    bool

	task  []byte
	lines [][]byte
	next  int
	buf   []byte // the rest of the line being read

	out     bytes.Buffer
	partial []byte // output after its last newline
	badLine []byte // the first output line that is not a protocol message
}

func newFuzzWorker(task []byte, data []byte) *fuzzWorker {
	w := &fuzzWorker{pending: map[string]string{}, task: append(task, '\n')}
	w.cond = sync.NewCond(&w.mu)
	// Split as the runtime does (bufio.ScanLines), so that both sides agree
	// on which lines answer which requests.
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	for sc.Scan() {
		w.lines = append(w.lines, append([]byte(nil), sc.Bytes()...))
	}
	return w
}

// Write takes the runtime's output, which may hold several lines (the
// runtime buffers its lines until it waits) or part of one.
func (w *fuzzWorker) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
}

// line checks one output line and notes the request it makes, if any.
func (w *fuzzWorker) line(l []byte) {
	var msg struct{ Type, ID string }
	if json.Unmarshal(l, &msg) != nil || msg.Type == "" {
		if w.badLine == nil {
			w.badLine = append([]byte(nil), l...)
		}
		return
	}
	if want, ok := responseType[msg.Type]; ok {
		w.pending[msg.ID] = want
		w.cond.Broadcast()
	}
}

func (w *fuzzWorker) Read(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		switch {
		case w.task != nil:
			w.buf, w.task = w.task, nil
		case w.next == len(w.lines):
			return 0, io.EOF
		default:
			for len(w.pending) == 0 && !w.done {
				w.cond.Wait()
			}
			line := w.lines[w.next]
			w.next++
			var msg ToRuntime
			if json.Unmarshal(line, &msg) == nil && w.pending[msg.ID] == msg.Type {
				delete(w.pending, msg.ID)
			}
			w.buf = append(line, '\n')
		}
	}
	n := copy(p, w.buf)
	w.buf = w.buf[n:]
	return n, nil
}

func (w *fuzzWorker) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

func (w *fuzzWorker) finish() {
	w.mu.Lock()
	w.done = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// FuzzRuntime feeds arbitrary bytes to the runtime after a valid task. The
// runtime must return, without panicking, having written only protocol lines
// (JSON objects that lead with their type) and exactly one result, last.
func FuzzRuntime(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzRuntime: answers, errors,
	// tool calls (sandbox, host, not offered), stray and malformed lines.
	task, err := json.Marshal(ToRuntime{Type: TypeTask, Task: &Task{
		RunID: "run_fuzz", Prompt: "fuzz", Model: "m/x", MaxTurns: 4,
		// Read-only tools and a host tool: the fuzzer may call them.
		Tools: []string{"ls", "read", "vault.search"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	// The tools offered only read: one workspace serves every input.
	ws := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		w := newFuzzWorker(task, data)
		done := make(chan error, 1)
		go func() { done <- Run(context.Background(), w, w, io.Discard, ws) }()
		var err error
		hung := time.NewTimer(10 * time.Second)
		defer hung.Stop()
		select {
		case err = <-done:
		case <-hung.C:
			buf := make([]byte, 1<<20)
			t.Fatalf("the runtime hung; output so far:\n%s\ngoroutines:\n%s", w.output(), buf[:goruntime.Stack(buf, true)])
		}
		w.finish()
		if err != nil {
			t.Fatalf("Run returned %v after a valid task", err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.badLine != nil {
			t.Fatalf("the runtime wrote a line that is not a protocol message: %q", w.badLine)
		}
		lines := strings.Split(strings.TrimSuffix(w.out.String(), "\n"), "\n")
		for i, l := range lines {
			var msg FromRuntime
			if err := json.Unmarshal([]byte(l), &msg); err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			if typ, ok := LeadingType([]byte(l)); !ok || typ != msg.Type {
				t.Fatalf("line %d does not lead with its type %q: %s", i+1, msg.Type, l)
			}
			if (msg.Type == TypeResult) != (i == len(lines)-1) {
				t.Fatalf("line %d of %d is %q: want exactly one result, last", i+1, len(lines), msg.Type)
			}
		}
	})
}

// FuzzHeadTail checks the bash output buffer: whatever is written, it keeps
// the whole output when it fits, else exactly its first and last bytes.
func FuzzHeadTail(f *testing.F) {
	f.Add(16, []byte("hello"), []byte(" world"), []byte("0123456789abcdefghij"))
	f.Add(4, []byte(""), []byte("abcdefgh"), []byte("ij"))
	f.Add(1, []byte("x"), []byte("y"), []byte("z"))
	f.Fuzz(func(t *testing.T, max int, a, b, c []byte) {
		if max < 2 || max > 1<<12 {
			t.Skip()
		}
		h := &headTail{max: max}
		var all []byte
		for _, p := range [][]byte{a, b, c} {
			n, err := h.Write(p)
			if n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			all = append(all, p...)
		}
		got := h.String()
		half := max / 2
		if len(all) <= 2*half {
			if got != string(all) {
				t.Fatalf("got %q, want the whole %q", got, all)
			}
			return
		}
		if !strings.HasPrefix(got, string(all[:half])) || !strings.HasSuffix(got, string(all[len(all)-half:])) {
			t.Fatalf("got %q: want the first and last %d bytes of %q", got, half, all)
		}
		if !strings.Contains(got, "bytes of output omitted") {
			t.Fatalf("got %q: no note of the omitted bytes", got)
		}
	})
}
