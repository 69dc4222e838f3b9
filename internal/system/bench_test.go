package system_test

import (
	"context"
	"fmt"
	"net/http"
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
	report(b, out)
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
	measure(b, clients, func() error { return bench.PostOK(client, url, body) })
}

// measure runs b.N calls from the given number of clients, after a warm-up,
// and reports the latency percentiles and the throughput.
func measure(b *testing.B, clients int, call func() error) {
	// Warm up: connections, pools, the first process starts.
	for range min(clients, 16) {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	out := bench.Concurrently(context.Background(), clients, b.N, func(string) error { return call() })
	b.StopTimer()
	report(b, out)
}

// report fails the benchmark if a call failed, and reports the latency
// percentiles and the throughput.
func report(b *testing.B, out *bench.Outcome) {
	if len(out.Latencies) != b.N {
		b.Fatalf("%d of %d round trips failed: %v", b.N-len(out.Latencies), b.N, out.Errors)
	}
	b.ReportMetric(ms(out.Percentile(50)), "p50-ms")
	b.ReportMetric(ms(out.Percentile(99)), "p99-ms")
	b.ReportMetric(out.Throughput(), "req/s")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
