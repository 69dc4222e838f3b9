// Package sandbox gives the worker isolated places to run one agent runtime each.
//
// A Sandbox is made by a Driver, already running the runtime command and waiting
// for its task on stdin. It serves exactly one run and is destroyed after it:
// never reused. The worker gets sandboxes only through a Pool.
//
// Drivers, by the name configuration chooses them with (see NewDriver):
//
//   - "linux" (the default): namespaces, a fresh read-only root, cgroup limits,
//     uid 65534 without capabilities, no_new_privs and a seccomp filter.
//   - "gvisor": the same contract under gVisor's user-space kernel (runsc).
//   - "unsafe-process": a plain child process, no isolation, for development.
//
// # What callers must do
//
// The linux driver starts each sandbox by executing Config.Init, by default
// the current binary (/proc/self/exe), as a small init, which builds the
// sandbox around itself and then executes the runtime. oneshot-runtime, a
// binary with the runtime and the init only, starts faster than the server's
// binary: workers use it as the init when it is installed beside them. In
// any binary, the init runs from the initializer of a package this one
// imports (internal/sandboxinit): it takes over such a process before main,
// and before the binary's heavier packages initialize, which would cost
// milliseconds per sandbox. So a binary that creates sandboxes needs nothing
// more than to import this package, which it does. To keep the wiring visible,
// main and TestMain may call MaybeRunInit first thing; it returns false in
// every process that is not a sandbox init:
//
//	func main() {
//		if sandbox.MaybeRunInit() {
//			return // not reached: an init executes the runtime or exits
//		}
//		...
//	}
//
//	func TestMain(m *testing.M) {
//		sandbox.MaybeRunInit()
//		os.Exit(m.Run())
//	}
//
// Two more rules. Driver.Check must pass before a worker takes tasks: it
// starts a trial sandbox and says what is missing when it cannot. And a
// goroutine that calls runtime.LockOSThread must call UnlockOSThread before it
// ends: a sandbox dies with the OS thread that started it (its parent-death
// signal), and Go ends a thread whose locked goroutine ends.
package sandbox

import (
	"context"
	"fmt"
	"io"
)

// Spec sizes one sandbox. Zero values mean the defaults of the reference runtime.
type Spec struct {
	CPU       float64 `json:"cpu"`       // cores; default 2
	MemoryMiB int     `json:"memoryMiB"` // default 2048
}

// Default sizing, as in the reference runtime.
const (
	DefaultCPU       = 2.0
	DefaultMemoryMiB = 2048
)

// Default settings of the isolating drivers; see Config.
const (
	DefaultPidsMax      = 256
	DefaultWorkspaceMiB = 1024
	DefaultTmpMiB       = 256
	DefaultCgroupRoot   = "/oneshot"
)

// WithDefaults fills zero fields.
func (s Spec) WithDefaults() Spec {
	if s.CPU == 0 {
		s.CPU = DefaultCPU
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = DefaultMemoryMiB
	}
	return s
}

// Class is the pool key of a spec: sandboxes of one class are interchangeable.
func (s Spec) Class() string {
	s = s.WithDefaults()
	return fmt.Sprintf("%gcpu-%dmib", s.CPU, s.MemoryMiB)
}

// Driver creates sandboxes of one kind.
type Driver interface {
	// Name is what the API reports as the run's provider.
	Name() string
	// Check verifies that this host can create sandboxes. Its error says what is
	// missing and how to fix it.
	Check(ctx context.Context) error
	// Create starts a new sandbox running the runtime command.
	Create(ctx context.Context, spec Spec) (Sandbox, error)
}

// Sandbox is one running, isolated runtime process and everything it starts.
type Sandbox interface {
	ID() string
	// Stdin, Stdout and Stderr are the runtime's standard streams.
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader
	// Wait blocks until the runtime process exits, and says how.
	Wait() Exit
	// Destroy kills every process of the sandbox and removes all it made on the
	// host. It is safe to call more than once and concurrently with Wait.
	Destroy() error
}

// MemoryLimitHit says whether the kernel has killed a process of the sandbox
// for its memory limit so far, for drivers that can tell (linux, gvisor).
// The runtime may outlive such a kill (a tool's process was the victim) for a
// moment before the whole sandbox is killed; a run must fail all the same.
func MemoryLimitHit(sb Sandbox) bool {
	h, ok := sb.(interface{ MemoryLimitHit() bool })
	return ok && h.MemoryLimitHit()
}

// Exit says how a sandbox's runtime process ended.
type Exit struct {
	Code      int    // exit code, or -1 when killed by a signal
	Signal    string // the signal that killed it, if any
	OOMKilled bool   // the memory limit was hit
	MemoryMiB int    // the limit in force, for error messages
}

// String describes the exit for run errors and logs.
func (e Exit) String() string {
	switch {
	case e.OOMKilled:
		return fmt.Sprintf("out of memory: the sandbox exceeded its limit of %d MiB", e.MemoryMiB)
	case e.Signal != "":
		return "killed by signal " + e.Signal
	default:
		return fmt.Sprintf("exit code %d", e.Code)
	}
}
