package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Scenarios lists what `oneshot bench` can run.
var Scenarios = []string{"steady", "kill", "term", "redis-restart", "failover", "burst"}

// Main is `oneshot bench [flags] scenario...`: it starts a system of its own on
// loopback for each scenario, runs it, prints the report, and fails when a
// run was lost.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("oneshot bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 2, "worker processes")
	concurrency := fs.Int("concurrency", 8, "runs per worker (ONESHOT_WORKER_CONCURRENCY)")
	driver := fs.String("driver", "linux", "sandbox driver")
	levels := fs.String("clients", "1,16,64,256", "steady: concurrent clients per level")
	perLevel := fs.Int("requests", 2000, "steady: requests per level")
	kills := fs.Int("kills", 3, "kill: how many workers to kill")
	runTime := fs.Duration("run-time", 2*time.Second, "kill, term: how long each run sleeps in its sandbox")
	redisDown := fs.Duration("redis-down", 3*time.Second, "redis-restart: how long Redis stays down")
	burstClients := fs.Int("burst-clients", 500, "burst: concurrent clients")
	burstRequests := fs.Int("burst-requests", 2000, "burst: requests")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: oneshot bench [flags] scenario...\nscenarios: %s\nflags:\n", strings.Join(Scenarios, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no scenario given")
	}
	var clients []int
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-clients: %q is not a positive number", s)
		}
		clients = append(clients, n)
	}
	var lost int
	for _, name := range fs.Args() {
		cfg := ClusterConfig{Workers: *workers, WorkerConcurrency: *concurrency, SandboxDriver: *driver, Sentinel: name == "failover"}
		c, err := StartCluster(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%s: start the system: %w", name, err)
		}
		var r *Report
		switch name {
		case "steady":
			r, err = Steady(ctx, c, clients, *perLevel)
		case "kill":
			r, err = KillWorkers(ctx, c, *kills, *runTime)
		case "term":
			r, err = TermWorker(ctx, c, *runTime)
		case "redis-restart":
			r, err = RestartRedis(ctx, c, *redisDown)
		case "failover":
			r, err = Failover(ctx, c)
		case "burst":
			r, err = Burst(ctx, c, *burstClients, *burstRequests)
		default:
			err = fmt.Errorf("unknown scenario %q; scenarios: %s", name, strings.Join(Scenarios, ", "))
		}
		c.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", name, err, c.Dir())
		}
		r.Print(stdout)
		fmt.Fprintf(stdout, "   logs: %s\n", c.Dir())
		lost += r.Lost
	}
	if lost > 0 {
		return fmt.Errorf("%d accepted runs were lost", lost)
	}
	return nil
}
