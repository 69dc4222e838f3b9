package systemtest

import (
	"context"
	"io"
	"sync"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/sandbox"
)

// InProcessDriver runs each runtime as goroutines of the worker, over pipes
// that speak the same protocol: no process, no isolation. It is for
// benchmarks that measure the system's own work (API, queue, records,
// protocol) without the cost of starting a process or a sandbox per run; it is
// not part of any binary. Every runtime shares the Workspace folder.
type InProcessDriver struct {
	Workspace string
}

func (InProcessDriver) Name() string                { return "in-process" }
func (InProcessDriver) Check(context.Context) error { return nil }

func (d InProcessDriver) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	s := &inProcess{id: sandbox.NewID(), done: make(chan struct{})}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s.stdin, s.stdout = inW, outR
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		if err := agent.Run(runCtx, inR, outW, io.Discard, d.Workspace); err != nil {
			s.exit.Code = 1
		}
		outW.Close()
	}()
	return s, nil
}

type inProcess struct {
	id      string
	stdin   *io.PipeWriter
	stdout  *io.PipeReader
	cancel  context.CancelFunc
	done    chan struct{}
	exit    sandbox.Exit
	destroy sync.Once
}

func (s *inProcess) ID() string            { return s.id }
func (s *inProcess) Stdin() io.WriteCloser { return s.stdin }
func (s *inProcess) Stdout() io.Reader     { return s.stdout }
func (s *inProcess) Stderr() io.Reader     { return eofReader{} }
func (s *inProcess) Wait() sandbox.Exit    { <-s.done; return s.exit }
func (s *inProcess) Done() <-chan struct{} { return s.done }

func (s *inProcess) Destroy() error {
	s.destroy.Do(func() {
		s.cancel()
		s.stdin.CloseWithError(io.ErrClosedPipe)
		s.stdout.CloseWithError(io.ErrClosedPipe)
		<-s.done
	})
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
