package system_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// BenchmarkRoundTrip measures, in one run and on one Redis, the sync execute
// round trip of builtin/echo through HTTP, the worker and a sandbox, beside a
// raw Asynq round trip (enqueue -> handler -> PUBLISH -> caller, one shared
// subscription) with the same task check interval. It reports p50, p99 and
// throughput at 1 and 64 concurrent clients.
//
//	go test -run '^$' -bench RoundTrip -benchtime 2000x ./internal/system/
func BenchmarkRoundTrip(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("raw-asynq/clients=%d", clients), func(b *testing.B) {
			r := systemtest.StartRedis(b)
			call := rawAsynq(b, r, 16)
			measure(b, clients, call)
		})
		b.Run(fmt.Sprintf("execute-%s/clients=%d", systemtest.Driver(), clients), func(b *testing.B) {
			r := systemtest.StartRedis(b)
			cfg := systemtest.Config(r.URL)
			cfg.WorkerConcurrency = 16
			cfg.SandboxWarm = 16
			sys := systemtest.Start(b, cfg, system.Roles{API: true, Worker: true})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			url := "http://" + sys.APIAddr + "/agent/v1/execute"
			body := []byte(`{"prompt":"ping","model":"builtin/echo"}`)
			measure(b, clients, func() error {
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
		})
	}
}

// rawAsynq returns a call that enqueues a no-op task and waits for its
// handler's PUBLISH on one shared subscription: the floor under execute.
func rawAsynq(b *testing.B, r *systemtest.Redis, concurrency int) func() error {
	rdb := r.Client(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	ps := rdb.Subscribe(ctx, "raw-reply")
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	go func() {
		for msg := range ps.Channel() {
			mu.Lock()
			if ch := waiting[msg.Payload]; ch != nil {
				close(ch)
				delete(waiting, msg.Payload)
			}
			mu.Unlock()
		}
	}()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: concurrency, TaskCheckInterval: time.Millisecond, LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("raw", func(ctx context.Context, t *asynq.Task) error {
		return rdb.Publish(ctx, "raw-reply", string(t.Payload())).Err()
	})
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	client := asynq.NewClientFromRedisClient(rdb)
	var n int64
	var nmu sync.Mutex
	return func() error {
		nmu.Lock()
		n++
		id := fmt.Sprint("t", n)
		nmu.Unlock()
		ch := make(chan struct{})
		mu.Lock()
		waiting[id] = ch
		mu.Unlock()
		if _, err := client.Enqueue(asynq.NewTask("raw", []byte(id), asynq.TaskID(id))); err != nil {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("no reply for %s", id)
		}
	}
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
