// Command oneshot-runtime is the agent runtime alone: what a worker starts in
// each sandbox (package agent documents its protocol). It does what
// `oneshot agent` does, but links only the runtime and the sandbox init, not
// the server, so it starts in about a millisecond instead of about five; and
// the linux driver uses it as each sandbox's init too, which saves as much
// again. `make build` puts it beside bin/oneshot, where workers look for it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/internal/sandboxinit"
)

func main() {
	// The init already ran from sandboxinit's package initializer; this says so.
	if sandboxinit.IsInit() {
		sandboxinit.Run()
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: oneshot-runtime (no arguments): the agent runtime, speaking JSON lines on stdin and stdout; a worker starts it in a sandbox")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := agent.Run(ctx, os.Stdin, os.Stdout, os.Stderr, agent.Workspace())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "oneshot-runtime:", err)
		os.Exit(1)
	}
}
