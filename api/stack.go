package api

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
)

// offload runs f on a goroutine of its own, at most Config.MaxWorking at
// once, and waits for it. f must not call offload.
//
// A sync execute waits for up to SyncTimeout on its connection's goroutine,
// and a goroutine keeps the largest stack it ever grew until a GC finds it
// mostly unused. Reading JSON and calling Redis grow a stack to 16 KB; done
// here, they leave the waiting goroutine at the few KB that net/http, Echo
// and the wait itself need, and the goroutine that did the work exits. The
// bound keeps a burst of requests from growing thousands of such stacks at
// once: they would all wait for the same few Redis connections anyway.
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

	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.panicked = p
				if p != http.ErrAbortHandler { // net/http's signal to abort quietly: kept as is
					r.panicked = fmt.Errorf("%v [in offload]\n%s", p, debug.Stack())
				}
			}
			done <- r
		}()
		r.err = f()
	}()
	r := <-done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// errClientGone ends a request whose client went away while it waited for
// its turn; no one reads the answer.
var errClientGone = &Error{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "client_gone",
	Message: "the client went away before the request was served"}
