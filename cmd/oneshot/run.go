package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/bench"
	"github.com/oneshot-dev/oneshot/internal/system"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: oneshot <command>

commands:
  dev       API and worker in one process; embedded Redis when ONESHOT_REDIS_URL is unset
  api       the HTTP API (needs ONESHOT_REDIS_URL)
  worker    a worker that runs execute tasks in sandboxes (needs ONESHOT_REDIS_URL)
  agent     the agent runtime, started inside a sandbox by a worker
  keys      create, list and revoke API keys (needs ONESHOT_REDIS_URL)
  bench     load and fault scenarios against a system it starts on loopback (docs/reliability.md)
  version   print the version

Settings are ONESHOT_* environment variables; see the README.`

// run is the program: main without the process around it, so tests can run it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, "oneshot", version)
		return nil
	case "agent":
		return agent.Run(ctx, stdin, stdout, stderr, agent.Workspace())
	case "bench":
		return bench.Main(ctx, args[1:], stdout, stderr)
	case "dev":
		return serve(ctx, system.Roles{API: true, Worker: true}, stdout, stderr)
	case "api":
		return serve(ctx, system.Roles{API: true}, stdout, stderr)
	case "worker":
		return serve(ctx, system.Roles{Worker: true}, stdout, stderr)
	case "keys":
		return keys(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// serve runs the roles until ctx ends, then shuts down in order.
func serve(ctx context.Context, roles system.Roles, stdout, stderr io.Writer) error {
	var cfg system.Config
	if err := envconfig.Process("oneshot", &cfg); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	log := newLogger(cfg, stderr)
	sys, err := system.Start(ctx, cfg, roles, log)
	if err != nil {
		return err
	}
	announce(stdout, sys, roles, cfg)
	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+10*time.Second)
	defer cancel()
	return sys.Shutdown(sctx)
}

func newLogger(cfg system.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// announce prints where everything is.
func announce(w io.Writer, sys *system.System, roles system.Roles, cfg system.Config) {
	var b strings.Builder
	fmt.Fprintf(&b, "oneshot %s\n", version)
	if roles.API {
		base := "http://" + sys.APIAddr
		fmt.Fprintf(&b, "  API        %s/agent/v1/execute\n", base)
		if cfg.Monitoring != "off" {
			fmt.Fprintf(&b, "  Asynq UI   %s/monitoring\n", base)
		}
		fmt.Fprintf(&b, "  metrics    %s/metrics\n", base)
		fmt.Fprintf(&b, "  health     %s/healthz  %s/readyz\n", base, base)
	}
	if roles.Worker && !roles.API {
		fmt.Fprintf(&b, "  worker     http://%s/metrics  /healthz  /readyz\n", sys.WorkerAddr)
	}
	if roles.Worker {
		fmt.Fprintf(&b, "  sandbox    %s driver, %d runs at once, runtime %s\n", cfg.SandboxDriver, cfg.WorkerConcurrency, strings.Join(sys.Runtime.Command, " "))
	}
	if sys.Embedded() {
		fmt.Fprintf(&b, "  redis      embedded (in memory, lost on exit) at %s; set ONESHOT_REDIS_URL for a real one\n", sys.RedisURL())
	} else {
		fmt.Fprintf(&b, "  redis      %s\n", sys.RedactedRedisURL())
	}
	auth := ""
	if roles.API {
		fmt.Fprintf(&b, "  models     builtin/echo always; others need a provider setting (see README)\n")
		fmt.Fprintf(&b, "  auth       %s\n", authLine(sys))
		if open, err := sys.API.Open(context.Background()); err == nil && !open {
			auth = " -H 'authorization: Bearer <key>'"
		}
	}
	fmt.Fprintf(&b, "Try:\n  curl -s %s/agent/v1/execute%s -H 'content-type: application/json' -d '{\"prompt\":\"hello\",\"model\":\"builtin/echo\"}'\n", "http://"+sys.APIAddr, auth)
	if !roles.API {
		b.Reset()
		fmt.Fprintf(&b, "oneshot %s worker: http://%s/metrics, sandbox %s, redis %s\n", version, sys.WorkerAddr, cfg.SandboxDriver, sys.RedactedRedisURL())
	}
	io.WriteString(w, b.String())
}

// authLine says whether the API needs keys.
func authLine(sys *system.System) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	open, err := sys.API.Open(ctx)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if open {
		return "open (no API keys): anyone who reaches this address can run tasks"
	}
	n, err := sys.API.KeyCount(ctx)
	if err != nil {
		return "API keys required (" + err.Error() + ")"
	}
	if n == 1 {
		return "1 key; send Authorization: Bearer <key>"
	}
	return fmt.Sprintf("%d keys; send Authorization: Bearer <key>", n)
}
