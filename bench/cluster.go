// Package bench drives a running oneshot system on this machine with load and
// faults, and checks every accepted run's final record. It starts the system
// itself — redis-server (or a Sentinel group), one API process and worker
// processes, all on loopback — so that it can kill and restart their parts.
//
// `oneshot bench` runs its scenarios from the command line; the package's
// tests run the short ones.
package bench

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClusterConfig describes the system a scenario runs against.
type ClusterConfig struct {
	// Binary is the oneshot binary. Default: this program.
	Binary string
	// Dir holds the processes' logs and Redis's data. Default: a new temp dir.
	Dir string
	// Workers is the number of worker processes. Default 2.
	Workers int
	// WorkerConcurrency is each worker's ONESHOT_WORKER_CONCURRENCY. Default 8.
	WorkerConcurrency int
	// SandboxDriver is ONESHOT_SANDBOX_DRIVER. Default linux.
	SandboxDriver string
	// Sentinel runs Redis as a primary, a replica and three sentinels.
	Sentinel bool
	// Env adds settings to every oneshot process.
	Env []string
}

// Cluster is a running system: Redis, one API, workers.
type Cluster struct {
	cfg     ClusterConfig
	redis   []*redisServer // [primary] or [primary, replica]
	sentels []*redisServer
	api     *process
	workers []*process
	// APIURL is the API's base URL.
	APIURL string
	// RedisURL is what the oneshot processes connect to.
	RedisURL string
	apiAddr  string
}

// StartCluster starts Redis, the API and the workers, and waits until the
// API is ready.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Binary = exe
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "oneshot-bench-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = dir
	}
	cfg.Workers = cmp.Or(cfg.Workers, 2)
	cfg.WorkerConcurrency = cmp.Or(cfg.WorkerConcurrency, 8)
	cfg.SandboxDriver = cmp.Or(cfg.SandboxDriver, "linux")
	c := &Cluster{cfg: cfg}
	if err := c.startRedis(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		c.Stop()
		return nil, err
	}
	c.apiAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.APIURL = "http://" + c.apiAddr
	if err := c.StartAPI(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	for i := range cfg.Workers {
		w, err := c.startWorker(ctx, i)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.workers = append(c.workers, w)
	}
	return c, nil
}

func (c *Cluster) env(extra ...string) []string {
	env := append(os.Environ(),
		"ONESHOT_REDIS_URL="+c.RedisURL,
		"ONESHOT_SANDBOX_DRIVER="+c.cfg.SandboxDriver,
		"ONESHOT_LOG_FORMAT=json",
		"ONESHOT_MONITORING=off",
	)
	env = append(env, c.cfg.Env...)
	return append(env, extra...)
}

// StartAPI starts the API process (again, after StopAPI) on its address.
func (c *Cluster) StartAPI(ctx context.Context) error {
	p, err := startProcess(c.cfg, "api", c.env("ONESHOT_HTTP_ADDR="+c.apiAddr), "api")
	if err != nil {
		return err
	}
	c.api = p
	return waitReady(ctx, c.APIURL+"/readyz", 30*time.Second)
}

func (c *Cluster) startWorker(ctx context.Context, i int) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := startProcess(c.cfg, fmt.Sprintf("worker-%d", i), c.env(
		"ONESHOT_WORKER_ADDR="+addr,
		"ONESHOT_WORKER_CONCURRENCY="+strconv.Itoa(c.cfg.WorkerConcurrency),
		"ONESHOT_SANDBOX_WARM="+strconv.Itoa(c.cfg.WorkerConcurrency),
	), "worker")
	if err != nil {
		return nil, err
	}
	p.addr = addr
	return p, waitReady(ctx, "http://"+addr+"/readyz", 30*time.Second)
}

// Capacity is how many runs the workers run at once.
func (c *Cluster) Capacity() int { return len(c.workers) * c.cfg.WorkerConcurrency }

// Workers is the number of worker slots.
func (c *Cluster) Workers() int { return len(c.workers) }

// SignalWorker sends a signal to worker i and waits for it to exit.
func (c *Cluster) SignalWorker(i int, sig syscall.Signal) error {
	return c.workers[i].stop(sig, time.Minute)
}

// RestartWorker starts worker i again after it stopped.
func (c *Cluster) RestartWorker(ctx context.Context, i int) error {
	w, err := c.startWorker(ctx, i)
	if err != nil {
		return err
	}
	c.workers[i] = w
	return nil
}

// APIPid is the API process's pid, for memory readings.
func (c *Cluster) APIPid() int { return c.api.cmd.Process.Pid }

// Alive reports which processes are still running (nothing crashed).
func (c *Cluster) Alive() error {
	var errs []error
	for _, p := range append([]*process{c.api}, c.workers...) {
		if p.exited() {
			errs = append(errs, fmt.Errorf("%s exited: %v (log: %s)", p.name, p.err, p.logPath))
		}
	}
	return errors.Join(errs...)
}

// Stop stops everything.
func (c *Cluster) Stop() {
	for _, w := range c.workers {
		w.stop(syscall.SIGKILL, 10*time.Second)
	}
	if c.api != nil {
		c.api.stop(syscall.SIGKILL, 10*time.Second)
	}
	for _, s := range c.sentels {
		s.stop()
	}
	for _, r := range c.redis {
		r.stop()
	}
}

// Dir is where logs and data are.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// process is one oneshot process.
type process struct {
	name    string
	cmd     *exec.Cmd
	addr    string
	logPath string
	done    chan struct{}
	err     error
}

func startProcess(cfg ClusterConfig, name string, env []string, args ...string) (*process, error) {
	logPath := filepath.Join(cfg.Dir, name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop signals the process and waits for it to exit, killing it at timeout.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %s after %s", p.name, timeout, sig)
	}
}

// waitReady polls a readiness URL until it answers 200.
func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// logLines counts the lines of a process log that contain s.
func logLines(path, s string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}
