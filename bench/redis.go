package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server (or sentinel) process on a fixed port, with
// its data in its own folder so a restart finds it again.
type redisServer struct {
	name string
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start(ctx context.Context) error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	r.cmd = exec.Command("redis-server", r.args...)
	r.cmd.Dir = r.dir
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start %s (apt-get install -y redis-server): %w", r.name, err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s did not start", r.name, r.addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// stop kills the server (SIGKILL: a crash, not a clean save).
func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

func newRedisServer(dir, name string, extra ...string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{name: name, port: port, dir: filepath.Join(dir, name)}
	// appendfsync always: an acknowledged write survives a kill -9.
	r.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--logfile", "redis.log", "--maxmemory-policy", "noeviction"}, extra...)
	return r, nil
}

func (c *Cluster) startRedis(ctx context.Context) error {
	primary, err := newRedisServer(c.cfg.Dir, "redis")
	if err != nil {
		return err
	}
	if err := primary.start(ctx); err != nil {
		return err
	}
	c.redis = []*redisServer{primary}
	if !c.cfg.Sentinel {
		c.RedisURL = "redis://" + primary.addr() + "/0"
		return nil
	}
	replica, err := newRedisServer(c.cfg.Dir, "redis-replica", "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	if err != nil {
		return err
	}
	if err := replica.start(ctx); err != nil {
		return err
	}
	c.redis = append(c.redis, replica)
	var addrs []string
	for i := range 3 {
		s, err := newSentinel(c.cfg.Dir, fmt.Sprintf("sentinel-%d", i), primary.port)
		if err != nil {
			return err
		}
		if err := s.start(ctx); err != nil {
			return err
		}
		c.sentels = append(c.sentels, s)
		addrs = append(addrs, s.addr())
	}
	c.RedisURL = "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=oneshot"
	return waitReplicated(ctx, replica)
}

// newSentinel writes a sentinel config watching the primary: down after 1 s,
// failover within 5 s, quorum 2 of 3.
func newSentinel(dir, name string, primaryPort int) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{name: name, port: port, dir: filepath.Join(dir, name)}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nlogfile sentinel.log\n"+
		"sentinel monitor oneshot 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds oneshot 1000\n"+
		"sentinel failover-timeout oneshot 5000\n"+
		"sentinel parallel-syncs oneshot 1\n", port, primaryPort)
	path := filepath.Join(r.dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	r.args = []string{path, "--sentinel"}
	return r, nil
}

func waitReplicated(ctx context.Context, replica *redisServer) error {
	c := redis.NewClient(&redis.Options{Addr: replica.addr()})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := c.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica never synced with the primary")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// KillRedis kills the (primary) Redis: a crash.
func (c *Cluster) KillRedis() { c.redis[0].stop() }

// StartRedisAgain restarts the killed Redis on its port, with its data.
func (c *Cluster) StartRedisAgain(ctx context.Context) error { return c.redis[0].start(ctx) }

// PrimaryAddr asks the sentinels which server is the primary now.
func (c *Cluster) PrimaryAddr(ctx context.Context) (string, error) {
	for _, s := range c.sentels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
		addr, err := sc.GetMasterAddrByName(ctx, "oneshot").Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
	}
	return "", fmt.Errorf("no sentinel knows the primary")
}
