package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// BenchmarkWaitingSyncRequests measures the memory of an API process holding
// 10,000 sync execute requests that wait for their runs (no worker runs them),
// beside the same process idle. Target: under 300 MB. It also reports the Go
// runtime's view: goroutine stacks and heap in use when the RSS is read, and
// the live heap after a GC (asked for once the RSS is read).
//
//	go test -run '^$' -bench WaitingSyncRequests -benchtime 1x ./cmd/oneshot/
func BenchmarkWaitingSyncRequests(b *testing.B) {
	const waiting = 10_000
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	// The client here and the API process each hold one socket per request.
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < waiting+1000 {
		b.Skipf("need %d open files per process (ulimit -n), have %d: %v", waiting+1000, lim.Cur, err)
	}
	for range b.N {
		r := systemtest.StartRedis(b)
		p := startB(b, []string{"ONESHOT_REDIS_URL=" + r.URL, "ONESHOT_HTTP_ADDR=127.0.0.1:0", "ONESHOT_SYNC_TIMEOUT=10m", "ONESHOT_LOG_LEVEL=error", "ONESHOT_MONITORING=off", "ONESHOT_PPROF=true"}, "api")
		addr := p.addr(b)
		idle := rssMB(b, p.cmd.Process.Pid)

		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: waiting}}
		var wg sync.WaitGroup
		for i := range waiting {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post("http://"+addr+"/agent/v1/execute", "application/json",
					strings.NewReader(fmt.Sprintf(`{"prompt":"wait %d","model":"builtin/echo"}`, i)))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		deadline := time.Now().Add(5 * time.Minute)
		for metric(addr, "oneshot_api_sync_waiters") < waiting {
			if time.Now().After(deadline) {
				b.Fatalf("only %v waiters after 5 minutes", metric(addr, "oneshot_api_sync_waiters"))
			}
			time.Sleep(200 * time.Millisecond)
		}
		full := rssMB(b, p.cmd.Process.Pid)
		// Where it goes, as the Go runtime of the process sees it.
		stack := metric(addr, "go_memstats_stack_inuse_bytes") / (1 << 20)
		heap := metric(addr, "go_memstats_heap_inuse_bytes") / (1 << 20)
		// The heap profile, asked for after a GC, leaves the live heap.
		var heapProfile []byte
		if resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1"); err == nil {
			heapProfile, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		live := metric(addr, "go_memstats_heap_alloc_bytes") / (1 << 20)
		if dir := os.Getenv("ONESHOT_BENCH_PROFILE_DIR"); dir != "" {
			os.WriteFile(filepath.Join(dir, "heap.pb.gz"), heapProfile, 0o644)
			if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
				f, _ := os.Create(filepath.Join(dir, "metrics.txt"))
				io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
			if resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine"); err == nil {
				f, _ := os.Create(filepath.Join(dir, "goroutine.pb.gz"))
				io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
		}
		b.ReportMetric(idle, "idle-MB")
		b.ReportMetric(full, "rss-MB")
		b.ReportMetric((full-idle)*1024/waiting, "KB/waiter")
		b.ReportMetric(stack, "stack-MB")
		b.ReportMetric(heap, "heap-MB")
		b.ReportMetric(live, "live-heap-MB")
		p.cmd.Process.Kill()
		client.CloseIdleConnections()
		wg.Wait()
	}
}

// benchProcess is a oneshot process started by a benchmark.
type benchProcess struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

func startB(b *testing.B, env []string, args ...string) *benchProcess {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &benchProcess{cmd: cmd, out: bufio.NewReader(out)}
}

func (p *benchProcess) addr(b *testing.B) string {
	for {
		line, err := p.out.ReadString('\n')
		if m := addrLine.FindStringSubmatch(line); m != nil {
			go io.Copy(io.Discard, p.out)
			return m[1]
		}
		if err != nil {
			b.Fatalf("oneshot exited before announcing its API: %v", err)
		}
	}
}

// metric reads a metric without labels from the process's /metrics; 0 if
// it cannot.
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// rssMB reads a process's resident memory.
func rssMB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
