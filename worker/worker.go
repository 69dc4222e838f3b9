// Package worker runs execute tasks: it is the Asynq server of the system and
// the bridge between a run's record and the runtime in its sandbox.
package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/sandbox"
	"github.com/oneshot-dev/oneshot/tasks"
	"github.com/oneshot-dev/oneshot/webhook"
)

// HostTools runs service tools on the host side for the runtime.
type HostTools interface {
	Run(ctx context.Context, call HostToolCall) (string, error)
}

// HostToolCall is one service-tool call, with the scope of its run.
type HostToolCall struct {
	RunID     string
	Tool      string // API name, e.g. "vault.search"
	Input     []byte // JSON object
	VaultIDs  []string
	ObjectIDs []string
}

// Config configures a Worker. Zero values mean the documented defaults.
type Config struct {
	Redis  redis.UniversalClient // required: Asynq and the run store use it
	Store  *run.Store            // required
	Pool   *sandbox.Pool         // required
	Router *model.Router         // required
	// HostTools serves service tools; nil refuses every service-tool call.
	HostTools HostTools

	// ID names this worker in run records and logs. Default host-pid-random.
	ID string
	// Concurrency is how many runs this worker runs at once. Default 10.
	Concurrency int
	// TaskCheckInterval is how long Asynq waits between polls of an empty
	// queue: the floor of pick-up latency. Default 1ms (about 1,900 Redis
	// commands a second while idle).
	TaskCheckInterval time.Duration
	// ShutdownTimeout is how long a stopping worker lets running runs finish
	// before handing them back to the queue. Default 30s.
	ShutdownTimeout time.Duration
	// RunDeadline bounds one run. Default 30m.
	RunDeadline time.Duration
	// MaxTurns bounds the model calls of one run. Default 50.
	MaxTurns int
	// MaxTokens bounds the tokens (in and out, summed over calls) of one run.
	// Default 2,000,000.
	MaxTokens int
	// MaxOutputTokens bounds the output of one model call. Default 8192.
	MaxOutputTokens int
	// CancelPollInterval is how often a running run's status is read, to
	// stop it when its cancel announcement was lost. Default 1s.
	CancelPollInterval time.Duration

	// WebhookSecret keys the signatures of webhook deliveries. Default: a
	// random secret of this process (signatures then verify nowhere).
	WebhookSecret []byte
	// WebhookGuard decides which addresses deliveries may connect to.
	WebhookGuard webhook.Guard
	// WebhookRootCAs are the CAs trusted for receivers; nil: the system's.
	WebhookRootCAs *x509.CertPool
	// WebhookTimeout bounds one delivery attempt. Default 10s.
	WebhookTimeout time.Duration
	// WebhookRetryDelay is the first retry's delay, doubled on each retry.
	// Default 10s.
	WebhookRetryDelay time.Duration
	// WebhookConcurrency is how many deliveries run at once. Default 10.
	WebhookConcurrency int

	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
}

func (c *Config) setDefaults() {
	host, _ := os.Hostname()
	c.ID = cmp.Or(c.ID, fmt.Sprintf("%s-%d-%s", cmp.Or(host, "worker"), os.Getpid(), run.NewID("w")[2:8]))
	c.Concurrency = cmp.Or(c.Concurrency, 10)
	c.TaskCheckInterval = cmp.Or(c.TaskCheckInterval, time.Millisecond)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 30*time.Second)
	c.RunDeadline = cmp.Or(c.RunDeadline, 30*time.Minute)
	c.MaxTurns = cmp.Or(c.MaxTurns, 50)
	c.MaxTokens = cmp.Or(c.MaxTokens, 2_000_000)
	c.MaxOutputTokens = cmp.Or(c.MaxOutputTokens, 8192)
	c.CancelPollInterval = cmp.Or(c.CancelPollInterval, time.Second)
	c.WebhookTimeout = cmp.Or(c.WebhookTimeout, 10*time.Second)
	c.WebhookRetryDelay = cmp.Or(c.WebhookRetryDelay, 10*time.Second)
	c.WebhookConcurrency = cmp.Or(c.WebhookConcurrency, 10)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Worker is one worker process's Asynq server and execute handler.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	server  *asynq.Server
	metrics *metrics

	cancels  cancels
	hooks    *asynq.Server // webhook deliveries
	sender   *webhook.Sender
	notifier *webhook.Notifier

	// base is the parent of every handler's context; cancelling it tells the
	// handlers that the worker is going away (not that the run failed).
	base       context.Context
	cancelBase context.CancelCauseFunc
	wg         sync.WaitGroup
}

// errShutdown is the cause of the base context's cancellation.
var errShutdown = errors.New("worker shutting down")

// New returns a worker. It does not start it.
func New(cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if cfg.Redis == nil || cfg.Store == nil || cfg.Pool == nil || cfg.Router == nil {
		return nil, errors.New("worker: Redis, Store, Pool and Router are required")
	}
	w := &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), metrics: newMetrics(cfg.Registerer)}
	w.metrics.concurrency.Set(float64(cfg.Concurrency))
	w.base, w.cancelBase = context.WithCancelCause(context.Background())
	if len(cfg.WebhookSecret) == 0 {
		w.cfg.WebhookSecret = make([]byte, 32)
		rand.Read(w.cfg.WebhookSecret)
		w.log.Warn("no webhook secret set (ONESHOT_WEBHOOK_SECRET): webhooks are signed with a random secret of this process, which receivers cannot verify and which does not survive a restart")
	}
	w.sender = webhook.NewSender(webhook.SenderConfig{Secret: w.cfg.WebhookSecret, Guard: cfg.WebhookGuard, RootCAs: cfg.WebhookRootCAs, Timeout: cfg.WebhookTimeout})
	w.notifier = &webhook.Notifier{Client: asynq.NewClientFromRedisClient(cfg.Redis), Logger: w.log}
	w.hooks = w.newWebhookServer()
	w.server = asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            map[string]int{tasks.QueueExecute: 1},
		TaskCheckInterval: cfg.TaskCheckInterval,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		BaseContext:       func() context.Context { return w.base },
		Logger:            asynqLogger{w.log},
		LogLevel:          asynq.WarnLevel,
		// Every failure of a run is written into its record; a task error is
		// only a lost worker or Redis trouble, worth a quick retry.
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration { return time.Second },
		IsFailure:      func(err error) bool { return !errors.Is(err, errRequeued) },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !errors.Is(err, errRequeued) {
				taskID, _ := asynq.GetTaskID(ctx) // t has no ResultWriter here
				w.log.Warn("execute task ended with an error", "task", taskID, "err", err)
			}
		}),
	})
	return w, nil
}

// Start starts processing tasks and returns.
func (w *Worker) Start() error {
	// Listening for cancels before taking any run: none can be missed.
	if err := w.listenCancels(w.base); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeExecute, w.handleExecute)
	if err := w.server.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	hooks := asynq.NewServeMux()
	hooks.HandleFunc(tasks.TypeWebhookDeliver, w.handleWebhook)
	if err := w.hooks.Start(hooks); err != nil {
		w.server.Shutdown()
		return fmt.Errorf("start webhook deliveries: %w", err)
	}
	w.log.Info("worker started", "concurrency", w.cfg.Concurrency, "sandbox", w.cfg.Pool.Driver().Name(), "taskCheckInterval", w.cfg.TaskCheckInterval)
	return nil
}

// Shutdown stops taking tasks, lets running runs finish for ShutdownTimeout,
// then hands the rest back to the queue (their records go back to queued).
func (w *Worker) Shutdown() {
	w.server.Stop() // no new tasks
	w.hooks.Stop()
	w.server.Shutdown() // waits up to ShutdownTimeout, then requeues the rest
	w.hooks.Shutdown()
	w.cancelBase(errShutdown)
	w.wg.Wait()
	w.log.Info("worker stopped")
}

// asynqLogger routes Asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
