package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Bounds of the bash tool.
const (
	bashDefaultTimeout = 120 * time.Second
	bashMaxTimeout     = 30 * time.Minute
	// bashWaitDelay is how long bash's output pipes stay open after bash has
	// exited (or was killed): a background child that still holds them loses
	// its later output rather than blocking the tool.
	bashWaitDelay = time.Second
)

func toolBash(ctx context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Command        string `json:"command"`
		TimeoutSeconds int    `json:"timeoutSeconds"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	if strings.TrimSpace(in.Command) == "" {
		return "", errors.New("command is empty")
	}
	timeout := bashDefaultTimeout
	if in.TimeoutSeconds > 0 {
		timeout = min(time.Duration(in.TimeoutSeconds)*time.Second, bashMaxTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, "bash", "-c", in.Command)
	cmd.Dir = workspace
	cmd.Env = append(os.Environ(), "PWD="+workspace)
	// Stdin stays nil (/dev/null): the runtime's own stdin is the protocol.
	out := &headTail{max: toolOutputCap - 1024} // room for the notes below
	cmd.Stdout = out
	cmd.Stderr = out
	// bash runs in a process group of its own; at the deadline the whole
	// group is killed, so children that hold the output pipe die with it.
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = bashWaitDelay

	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", fmt.Errorf("%s\n[timed out after %s; the command and its children were killed]", out, timeout)
		}
		return "", fmt.Errorf("%s\n[cancelled: %v]", out, context.Cause(ctx))
	case errors.Is(err, exec.ErrWaitDelay):
		// bash exited, but a background child kept its output open.
		return out.String() + "\n[a background process kept the output open; its later output is not shown]", nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return "", fmt.Errorf("%s\n[exit code %d]", out, exit.ExitCode())
	}
	if err != nil {
		return "", fmt.Errorf("run bash: %w", err)
	}
	return out.String(), nil
}

// headTail keeps the first and the last max/2 bytes written to it: a command's
// output can be endless, and its end (the error) matters as much as its start.
// exec calls Write from one goroutine at a time when Stdout == Stderr.
type headTail struct {
	max   int
	head  []byte
	tail  []byte // ring buffer once full
	pos   int    // next write position in tail
	total int
}

func (h *headTail) Write(p []byte) (int, error) {
	n := len(p)
	h.total += n
	half := h.max / 2
	if len(h.head) < half {
		k := min(half-len(h.head), len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		if len(h.tail) < half {
			k := min(half-len(h.tail), len(p))
			h.tail = append(h.tail, p[:k]...)
			p = p[k:]
			continue
		}
		k := copy(h.tail[h.pos:], p)
		h.pos = (h.pos + k) % half
		p = p[k:]
	}
	return n, nil
}

func (h *headTail) String() string {
	tail := append(append([]byte{}, h.tail[h.pos:]...), h.tail[:h.pos]...)
	kept := len(h.head) + len(tail)
	if h.total == kept {
		return string(h.head) + string(tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes of output omitted ...]\n%s", h.head, h.total-kept, tail)
}
