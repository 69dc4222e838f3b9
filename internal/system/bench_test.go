package system_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oneshot-dev/oneshot/bench"
	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// BenchmarkRoundTrip measures, in one run and on one Redis, the sync execute
// round trip of builtin/echo through HTTP, the worker and a sandbox, beside a
// raw Asynq round trip (enqueue -> handler -> PUBLISH -> caller, one shared
// subscription) with the same task check interval, plain and behind HTTP. It
// reports p50, p99 and throughput at 1 and 64 concurrent clients.
//
//	go test -run '^$' -bench RoundTrip -benchtime 2000x ./internal/system/
func BenchmarkRoundTrip(b *testing.B) {
	// The runtime and init of a real install (make build), not the test binary.
	lean, err := systemtest.BuildRuntime(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("raw-asynq/clients=%d", clients), func(b *testing.B) {
			rawRoundTrips(b, clients, bench.RawAsynq)
		})
		b.Run(fmt.Sprintf("raw-asynq-http/clients=%d", clients), func(b *testing.B) {
			rawRoundTrips(b, clients, bench.RawAsynqHTTP)
		})
		// The system's own work: the runtime in the worker's process, no
		// process or sandbox per run (the target "before sandboxes").
		b.Run(fmt.Sprintf("execute-in-process/clients=%d", clients), func(b *testing.B) {
			executeRoundTrips(b, clients, func(cfg *system.Config) { cfg.Driver = systemtest.InProcessDriver{Workspace: b.TempDir()} })
		})
		b.Run(fmt.Sprintf("execute-%s/clients=%d", systemtest.Driver(), clients), func(b *testing.B) {
			executeRoundTrips(b, clients, func(cfg *system.Config) {
				cfg.RuntimeCommand, cfg.SandboxInit = []string{lean}, lean
			})
		})
	}
}

type rawFunc func(ctx context.Context, redisURL string, clients, n int) (*bench.Outcome, error)

// rawRoundTrips measures a raw Asynq round trip, plain or behind HTTP.
func rawRoundTrips(b *testing.B, clients int, raw rawFunc) {
	r := systemtest.StartRedis(b)
	out, err := raw(context.Background(), r.URL, clients, b.N)
	if err != nil {
		b.Fatal(err)
	}
	if len(out.Latencies) != b.N {
		b.Fatalf("%d of %d round trips failed: %v", b.N-len(out.Latencies), b.N, out.Errors)
	}
	b.ReportMetric(ms(out.Percentile(50)), "p50-ms")
	b.ReportMetric(ms(out.Percentile(99)), "p99-ms")
	b.ReportMetric(out.Throughput(), "req/s")
}

// executeRoundTrips measures sync executes of builtin/echo on a system
// configured by setup.
func executeRoundTrips(b *testing.B, clients int, setup func(*system.Config)) {
	r := systemtest.StartRedis(b)
	cfg := systemtest.Config(r.URL)
	cfg.WorkerConcurrency = 16
	cfg.SandboxWarm = 16
	setup(&cfg)
	sys := systemtest.Start(b, cfg, system.Roles{API: true, Worker: true})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	url := "http://" + sys.APIAddr + "/agent/v1/execute"
	body := []byte(`{"prompt":"ping","model":"builtin/echo"}`)
	measure(b, clients, func() error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		// Read to the end, so that the connection is reused.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	})
}

// measure runs b.N calls from the given number of clients and reports the
// latency percentiles and the throughput.
func measure(b *testing.B, clients int, call func() error) {
	// Warm up: connections, pools, the first process starts.
	for range min(clients, 16) {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	var next int64 = -1
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				next++
				i := next
				mu.Unlock()
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				err := call()
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
