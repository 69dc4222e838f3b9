package api

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"
)

// offload runs f on another goroutine, at most Config.MaxWorking at once,
// and waits for it. f must not call offload.
//
// A sync execute waits for up to SyncTimeout on its connection's goroutine,
// and a goroutine keeps the largest stack it ever grew until a GC finds it
// mostly unused. Reading JSON and calling Redis grow a stack to 16 KB; done
// here, they leave the waiting goroutine at the few KB that net/http, Echo
// and the wait itself need. The goroutines that do this work are reused
// (offloadLoop), and the bound keeps a burst of requests from growing
// thousands of such stacks at once: they would all wait for the same few
// Redis connections anyway.
//
// A request whose context ends before its turn gets errClientGone, not f's
// work. A panic in f is raised again in the caller, with f's stack in its
// message, so Echo's Recover still answers 500.
func (s *Server) offload(ctx context.Context, f func() error) error {
	select {
	case s.working <- struct{}{}:
	case <-ctx.Done():
		return errClientGone
	}
	defer func() { <-s.working }()

	j := &offloaded{f: f, done: make(chan offloadResult, 1)}
	select {
	case s.idle <- j: // a goroutine that did earlier work takes it
	default:
		go s.offloadLoop(j)
	}
	r := <-j.done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

type offloaded struct {
	f    func() error
	done chan offloadResult
}

type offloadResult struct {
	err      error
	panicked any
}

// offloadIdle is how long a goroutine that did offloaded work waits for more
// before it exits. Reused, it keeps the stack it grew: growing a fresh
// goroutine's stack to 16 KB, copy by copy, cost more than the work itself.
const offloadIdle = 10 * time.Second

func (s *Server) offloadLoop(j *offloaded) {
	idle := time.NewTimer(offloadIdle)
	defer idle.Stop()
	for {
		j.done <- runOffloaded(j.f)
		idle.Reset(offloadIdle)
		select {
		case j = <-s.idle:
		case <-idle.C:
			return
		}
	}
}

func runOffloaded(f func() error) (r offloadResult) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked = p
			if p != http.ErrAbortHandler { // net/http's signal to abort quietly: kept as is
				r.panicked = fmt.Errorf("%v [in offload]\n%s", p, debug.Stack())
			}
		}
	}()
	r.err = f()
	return r
}

// errClientGone ends a request whose client went away while it waited for
// its turn; no one reads the answer.
var errClientGone = &Error{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "client_gone",
	Message: "the client went away before the request was served"}
