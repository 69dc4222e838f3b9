// Command oneshot is the whole of oneshot in one binary:
//
//	oneshot dev      API and worker in one process (embedded Redis when ONESHOT_REDIS_URL is unset)
//	oneshot api      the HTTP API (needs ONESHOT_REDIS_URL)
//	oneshot worker   a worker that runs execute tasks in sandboxes (needs ONESHOT_REDIS_URL)
//	oneshot agent    the agent runtime, started inside a sandbox by a worker
//	oneshot version  prints the version
//
// Settings come from ONESHOT_* environment variables; the README lists them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "oneshot:", err)
		os.Exit(1)
	}
}
