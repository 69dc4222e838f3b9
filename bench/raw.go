package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// RawAsynq measures the floor under execute on the same Redis: n no-op tasks
// enqueued by the given number of clients, each handler publishing its task
// id, each caller woken through one shared subscription. Its queue and
// channel are its own, so it can run beside a live system.
func RawAsynq(ctx context.Context, redisURL string, clients, n int) (*Outcome, error) {
	l, err := startRawLoop(ctx, redisURL, clients)
	if err != nil {
		return nil, err
	}
	defer l.close()
	return Concurrently(ctx, clients, n, l.roundTrip), nil
}

// RawAsynqHTTP is RawAsynq behind HTTP: each round trip is a JSON POST to an
// Echo handler on loopback (connections reused) that runs the raw round trip
// and answers a small JSON object. It is the floor under execute for any
// HTTP API on this machine: what HTTP alone costs beside RawAsynq.
func RawAsynqHTTP(ctx context.Context, redisURL string, clients, n int) (*Outcome, error) {
	l, err := startRawLoop(ctx, redisURL, clients)
	if err != nil {
		return nil, err
	}
	defer l.close()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/raw", func(c echo.Context) error {
		var body struct {
			ID string `json:"id"`
		}
		if err := c.Bind(&body); err != nil {
			return err
		}
		if err := l.roundTrip(body.ID); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
		}
		return c.JSON(http.StatusOK, map[string]string{"id": body.ID, "status": "completed"})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: e}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	url := "http://" + ln.Addr().String() + "/raw"
	return Concurrently(ctx, clients, n, func(id string) error {
		return PostOK(client, url, []byte(`{"id":"`+id+`"}`))
	}), nil
}

// PostOK posts a JSON body and reads the answer to the end, so that the
// connection is reused. An answer other than 200 is an error.
func PostOK(client *http.Client, url string, body []byte) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// rawLoop is an Asynq server whose handler publishes the task's id, and the
// one subscription that wakes the caller waiting for it.
type rawLoop struct {
	rdb    *redis.Client
	ps     *redis.PubSub
	srv    *asynq.Server
	client *asynq.Client

	mu      sync.Mutex
	waiting map[string]chan struct{}
}

const rawQueue, rawChannel = "bench-raw", "bench-raw-reply"

func startRawLoop(ctx context.Context, redisURL string, clients int) (*rawLoop, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("raw asynq needs a plain redis:// URL: %w", err)
	}
	l := &rawLoop{rdb: redis.NewClient(opt), waiting: map[string]chan struct{}{}}
	l.ps = l.rdb.Subscribe(ctx, rawChannel)
	if _, err := l.ps.Receive(ctx); err != nil {
		l.ps.Close()
		l.rdb.Close()
		return nil, err
	}
	go func() {
		for msg := range l.ps.Channel() {
			l.mu.Lock()
			if ch := l.waiting[msg.Payload]; ch != nil {
				close(ch)
				delete(l.waiting, msg.Payload)
			}
			l.mu.Unlock()
		}
	}()
	l.srv = asynq.NewServerFromRedisClient(l.rdb, asynq.Config{
		Concurrency: max(clients, 8), Queues: map[string]int{rawQueue: 1},
		TaskCheckInterval: time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:raw", func(ctx context.Context, t *asynq.Task) error {
		return l.rdb.Publish(ctx, rawChannel, string(t.Payload())).Err()
	})
	if err := l.srv.Start(mux); err != nil {
		l.ps.Close()
		l.rdb.Close()
		return nil, err
	}
	l.client = asynq.NewClientFromRedisClient(l.rdb)
	return l, nil
}

// roundTrip enqueues a task and waits for its handler's publish.
func (l *rawLoop) roundTrip(id string) error {
	ch := make(chan struct{})
	l.mu.Lock()
	l.waiting[id] = ch
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		delete(l.waiting, id)
		l.mu.Unlock()
	}
	if _, err := l.client.Enqueue(asynq.NewTask("bench:raw", []byte(id), asynq.TaskID(id), asynq.Queue(rawQueue))); err != nil {
		forget()
		return err
	}
	select {
	case <-ch:
		return nil
	case <-time.After(30 * time.Second):
		forget()
		return fmt.Errorf("no reply for %s", id)
	}
}

func (l *rawLoop) close() {
	l.srv.Shutdown()
	l.ps.Close()
	l.rdb.Close()
}

// Concurrently makes n calls of call from the given number of clients, each
// with an id of its own, and times them. Failed calls are counted under
// status 0, and the first ten errors kept.
func Concurrently(ctx context.Context, clients, n int, call func(id string) error) *Outcome {
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq atomic.Int64
	out := &Outcome{ByStatus: map[int]int{}}
	var mu sync.Mutex
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
				t0 := time.Now()
				err := call(prefix + "-" + strconv.FormatInt(i, 10))
				d := time.Since(t0)
				mu.Lock()
				out.Sent++
				if err != nil {
					out.ByStatus[0]++
					if len(out.Errors) < 10 {
						out.Errors = append(out.Errors, err.Error())
					}
				} else {
					out.ByStatus[200]++
					out.Latencies = append(out.Latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	return out
}
