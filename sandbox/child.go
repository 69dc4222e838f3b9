package sandbox

import (
	"io"
	"os/exec"
	"sync"
)

// child is what the sandboxes of every driver share: the process that runs
// the runtime (the init, runsc, or the runtime itself), its pipes and cgroup
// (none for unsafe-process), and how it ended.
type child struct {
	id    string
	spec  Spec
	cg    cgroup // nil: no cgroup
	cmd   *exec.Cmd
	stdio *stdio

	done chan struct{}
	exit Exit

	destroy    sync.Once
	destroyErr error
}

func newChild(spec Spec) child {
	return child{id: NewID(), spec: spec, done: make(chan struct{})}
}

func (s *child) ID() string            { return s.id }
func (s *child) Stdin() io.WriteCloser { return s.stdio.stdin }
func (s *child) Stdout() io.Reader     { return s.stdio.stdout }
func (s *child) Stderr() io.Reader     { return s.stdio.stderr }
func (s *child) Wait() Exit            { <-s.done; return s.exit }
func (s *child) Done() <-chan struct{} { return s.done }

// MemoryLimitHit says whether the kernel has killed a process of the sandbox
// for its memory limit so far.
func (s *child) MemoryLimitHit() bool { return s.cg != nil && s.cg.oomKills() > 0 }

// wait waits for the process to end and records how, as read by readExit
// (when not nil), with the sandbox's memory limit and whether it was hit.
func (s *child) wait(readExit func(Exit) Exit) {
	err := s.cmd.Wait()
	exit := exitOf(s.cmd.ProcessState, err)
	if readExit != nil {
		exit = readExit(exit)
	}
	exit.MemoryMiB = s.spec.MemoryMiB
	exit.OOMKilled = s.MemoryLimitHit()
	s.exit = exit
	close(s.done)
}
