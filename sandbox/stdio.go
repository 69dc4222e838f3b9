package sandbox

import (
	"errors"
	"os"
)

// stdio holds the three pipes between the worker and a runtime. The worker
// keeps its ends until Destroy; exec.Cmd never closes them, so output buffered
// in a pipe can still be read after the runtime has exited.
type stdio struct {
	stdin  *os.File    // the worker writes the task here
	stdout *os.File    // the worker reads JSON lines here
	stderr *os.File    // the worker reads diagnostics here
	child  [3]*os.File // the runtime's ends: stdin, stdout, stderr
}

func newStdio() (*stdio, error) {
	s := &stdio{}
	var err error
	if s.child[0], s.stdin, err = os.Pipe(); err != nil {
		return nil, err
	}
	if s.stdout, s.child[1], err = os.Pipe(); err != nil {
		s.close()
		return nil, err
	}
	if s.stderr, s.child[2], err = os.Pipe(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// closeChild closes the runtime's ends in the worker once the runtime holds them.
func (s *stdio) closeChild() {
	for i, f := range s.child {
		if f != nil {
			f.Close()
			s.child[i] = nil
		}
	}
}

// close closes every end still open.
func (s *stdio) close() error {
	s.closeChild()
	var errs []error
	for _, f := range []*os.File{s.stdin, s.stdout, s.stderr} {
		if f != nil {
			if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
