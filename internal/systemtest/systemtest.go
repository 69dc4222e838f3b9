// Package systemtest starts real oneshot systems for tests: a redis-server of
// their own, the API on a free port, workers, and the test binary itself as
// the runtime inside the sandboxes.
package systemtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/sandbox"
)

// Main runs a test binary's tests, or, when a worker started the binary as a
// runtime ("agent") or a sandbox init, acts as that instead. Call it from TestMain.
func Main(m *testing.M) {
	if sandbox.MaybeRunInit() {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		if err := agent.Run(context.Background(), os.Stdin, os.Stdout, os.Stderr, agent.Workspace()); err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Driver is the sandbox driver tests use: ONESHOT_TEST_SANDBOX_DRIVER, or linux.
func Driver() string {
	if d := os.Getenv("ONESHOT_TEST_SANDBOX_DRIVER"); d != "" {
		return d
	}
	return "linux"
}

// Redis is a redis-server started for one test, on a free port.
type Redis struct {
	URL     string
	Addr    string
	persist bool
	cmd     *exec.Cmd
	dir     string
}

// StartRedis starts a redis-server for the test, without persistence, and
// stops it at cleanup.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{dir: t.TempDir()}
	r.Start(t)
	t.Cleanup(r.Stop)
	return r
}

// StartPersistentRedis starts a redis-server that writes every change to its
// append-only file before answering, so a test can kill and restart it
// without losing anything it acknowledged.
func StartPersistentRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{dir: t.TempDir(), persist: true}
	r.Start(t)
	t.Cleanup(r.Stop)
	return r
}

// Start starts (or restarts) the server, on the same port after a restart.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	port := 0
	if r.Addr == "" {
		port = freePort(t)
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.URL = "redis://" + r.Addr + "/0"
	} else {
		_, p, _ := net.SplitHostPort(r.Addr)
		port, _ = strconv.Atoi(p)
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--logfile", filepath.Join(r.dir, "redis.log")}
	if r.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start", r.Addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop kills the server.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Client returns a client of the server, closed at cleanup.
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Config returns a configuration for a test system on the given Redis: free
// ports, the test binary as the runtime, short timeouts, quiet logs.
func Config(redisURL string) system.Config {
	exe, _ := os.Executable()
	return system.Config{
		HTTPAddr:            "127.0.0.1:0",
		WorkerAddr:          "127.0.0.1:0",
		RedisURL:            redisURL,
		LogLevel:            "warn",
		LogFormat:           "text",
		SyncTimeout:         20 * time.Second,
		BodyLimit:           "1M",
		RunRetention:        time.Hour,
		TaskRetention:       time.Minute,
		Monitoring:          "off",
		WorkerConcurrency:   4,
		TaskCheckInterval:   time.Millisecond,
		ShutdownTimeout:     5 * time.Second,
		RunDeadline:         time.Minute,
		MaxTurns:            20,
		MaxTokens:           1_000_000,
		MaxOutputTokens:     4096,
		SandboxDriver:       Driver(),
		SandboxWarm:         1,
		SandboxMinCPU:       0.25,
		SandboxMaxCPU:       8,
		SandboxMinMemoryMiB: 128,
		SandboxMaxMemoryMiB: 16384,
		RuntimeCommand:      []string{exe, "agent"},
		DefaultModel:        "anthropic/claude-sonnet-4.6",
	}
}

// Start starts a system with the roles and stops it at cleanup.
func Start(t testing.TB, cfg system.Config, roles system.Roles) *system.System {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		// ONESHOT_TEST_LOG_LEVEL=debug shows the system's own story of a test.
		level := slog.LevelWarn
		_ = level.UnmarshalText([]byte(os.Getenv("ONESHOT_TEST_LOG_LEVEL")))
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	sys, err := system.Start(context.Background(), cfg, roles, log)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sys.Shutdown(ctx)
	})
	return sys
}
