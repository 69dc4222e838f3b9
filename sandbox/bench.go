//go:build linux

package sandbox

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oneshot-dev/oneshot/internal/sandboxinit"
)

// EchoCommand is the runtime the benchmarks use: it answers the first line it
// reads with the same line, so "the first command ran" is observable.
var EchoCommand = []string{"/bin/sh", "-c", `read line; echo "$line"`}

// BenchResult is the latency distribution of one way to get a sandbox.
type BenchResult struct {
	Name     string
	N        int
	P50, P99 time.Duration
}

func (r BenchResult) String() string {
	return fmt.Sprintf("%-28s n=%-4d p50=%-10s p99=%s", r.Name, r.N, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
}

func newBenchResult(name string, samples []time.Duration) BenchResult {
	slices.Sort(samples)
	r := BenchResult{Name: name, N: len(samples)}
	if len(samples) > 0 {
		r.P50 = samples[len(samples)/2]
		r.P99 = samples[min(len(samples)-1, len(samples)*99/100)]
	}
	return r
}

// BenchWay is one way to get a sandbox, measured by Bench.
type BenchWay struct {
	Name string
	// Once gets one sandbox, runs a first command in it, gives it back, and
	// returns the latency of what it measures.
	Once func(ctx context.Context) (time.Duration, error)
}

// Bench measures each way n times, interleaved, so that the other load of a
// shared machine weighs on all of them alike.
func Bench(ctx context.Context, n int, ways ...BenchWay) ([]BenchResult, error) {
	samples := make([][]time.Duration, len(ways))
	for range n {
		for i, w := range ways {
			d, err := w.Once(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", w.Name, err)
			}
			samples[i] = append(samples[i], d)
		}
	}
	results := make([]BenchResult, len(ways))
	for i, w := range ways {
		results[i] = newBenchResult(w.Name, samples[i])
	}
	return results, nil
}

// Churn makes n sandboxes one way, from the given number of creators at
// once, and returns how many it made per second. With ColdWay, each is
// created, runs a first command and is destroyed: the ceiling of a worker
// that uses a fresh sandbox per run.
func Churn(ctx context.Context, w BenchWay, creators, n int) (perSecond float64, err error) {
	var mu sync.Mutex
	left := n
	start := time.Now()
	var wg sync.WaitGroup
	for range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if left == 0 || err != nil {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				if _, e := w.Once(ctx); e != nil {
					mu.Lock()
					err = cmp.Or(err, fmt.Errorf("%s: %w", w.Name, e))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), err
}

// ColdWay creates a sandbox with d and measures from Create until its runtime
// has answered a first line: create to first command. d's runtime must be
// EchoCommand (or echo its first line likewise). Destroying is not measured.
func ColdWay(d Driver, spec Spec) BenchWay {
	return BenchWay{Name: d.Name() + " cold", Once: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		sb, err := d.Create(ctx, spec)
		if err != nil {
			return 0, err
		}
		defer sb.Destroy()
		err = echo(sb.Stdin(), sb.Stdout())
		return time.Since(start), err
	}}
}

// AcquireWay waits until p is full, then measures Acquire alone.
func AcquireWay(p *Pool, spec Spec) BenchWay {
	return BenchWay{Name: p.driver.Name() + " pool acquire", Once: func(ctx context.Context) (time.Duration, error) {
		if err := p.waitWarm(ctx, spec, max(p.cfg.Warm, 1)); err != nil {
			return 0, err
		}
		start := time.Now()
		sb, err := p.Acquire(ctx, spec)
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		err = echo(sb.Stdin(), sb.Stdout())
		sb.Destroy()
		return elapsed, err
	}}
}

// BwrapWay runs EchoCommand under bubblewrap, with the linux driver's file
// system plan and namespaces but without cgroups, as a baseline, and measures
// like ColdWay.
func BwrapWay() (BenchWay, error) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return BenchWay{}, fmt.Errorf("bwrap: %w", err)
	}
	plan, err := newRootfs(Config{}.withDefaults(), EchoCommand)
	if err != nil {
		return BenchWay{}, err
	}
	args := []string{"--unshare-all", "--die-with-parent", "--new-session", "--hostname", sandboxinit.Hostname,
		"--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--clearenv",
		"--proc", "/proc", "--dev", "/dev"}
	for _, b := range plan.Binds {
		if !b.Device {
			args = append(args, "--ro-bind", b.Source, b.Target)
		}
	}
	for _, l := range plan.Links {
		if !l.Device {
			args = append(args, "--symlink", l.Target, l.Path)
		}
	}
	for _, t := range plan.Tmpfs {
		args = append(args, "--size", fmt.Sprint(t.SizeMiB<<20), "--tmpfs", t.Path)
	}
	for _, kv := range plan.Env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	args = append(append(args, "--chdir", sandboxinit.Workspace, "--"), EchoCommand...)
	return BenchWay{Name: "bwrap (baseline)", Once: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		cmd := exec.CommandContext(ctx, bwrap, args...)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("bwrap: %w", err)
		}
		err := echo(stdin, stdout)
		elapsed := time.Since(start)
		cmd.Process.Kill()
		cmd.Wait()
		return elapsed, err
	}}, nil
}

// echo writes a line and reads it back.
func echo(w io.Writer, r io.Reader) error {
	if _, err := io.WriteString(w, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("got %q, want ping", line)
	}
	return nil
}
