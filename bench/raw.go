package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RawAsynq measures the floor under execute on the same Redis: n no-op tasks
// enqueued by the given number of clients, each handler publishing its task
// id, each caller woken through one shared subscription. Its queue and
// channel are its own, so it can run beside a live system.
func RawAsynq(ctx context.Context, redisURL string, clients, n int) (*Outcome, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("raw asynq needs a plain redis:// URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	const queue, channel = "bench-raw", "bench-raw-reply"

	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	ps := rdb.Subscribe(ctx, channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		return nil, err
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
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: max(clients, 8), Queues: map[string]int{queue: 1},
		TaskCheckInterval: time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:raw", func(ctx context.Context, t *asynq.Task) error {
		return rdb.Publish(ctx, channel, string(t.Payload())).Err()
	})
	if err := srv.Start(mux); err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq atomic.Int64

	out := &Outcome{ByStatus: map[int]int{}}
	var omu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := seq.Add(1)
				if int(i) > n || ctx.Err() != nil {
					return
				}
				id := prefix + "-" + strconv.FormatInt(i, 10)
				ch := make(chan struct{})
				mu.Lock()
				waiting[id] = ch
				mu.Unlock()
				t0 := time.Now()
				_, err := client.Enqueue(asynq.NewTask("bench:raw", []byte(id), asynq.TaskID(id), asynq.Queue(queue)))
				if err == nil {
					select {
					case <-ch:
					case <-time.After(30 * time.Second):
						err = fmt.Errorf("no reply for %s", id)
					}
				}
				d := time.Since(t0)
				omu.Lock()
				out.Sent++
				if err != nil {
					out.ByStatus[0]++
				} else {
					out.ByStatus[200]++
					out.Latencies = append(out.Latencies, d)
				}
				omu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	return out, nil
}
