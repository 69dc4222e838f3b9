// Package api is the HTTP face of oneshot: an Echo server with the Agents API
// routes, request validation, error mapping, sync waiters and health checks.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers on http.DefaultServeMux, served only when Pprof is on
	"runtime"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/webhook"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	Redis  redis.UniversalClient // required
	Store  *run.Store            // required
	Router *model.Router         // required: decides which models can run

	// InstanceID names this API process; its reply channel derives from it.
	// Default: random.
	InstanceID string
	// Provider is the sandbox driver the workers use, reported for runs no
	// worker has picked up yet. Default "linux".
	Provider string
	// SyncTimeout is how long a sync execute waits before answering 202 with a
	// run id to poll. Default 50s, inside the reference SDK's 60 s timeout.
	SyncTimeout time.Duration
	// BodyLimit caps request bodies, in Echo's notation. Default "1M".
	BodyLimit string
	// MaxWorking bounds the requests that read their body, call Redis or
	// write their answer at once (offload); the others wait their turn.
	// Default 64 per CPU.
	MaxWorking int
	// Sandbox bounds accepted in requests.
	MinCPU, MaxCPU             float64 // default 0.25 .. 8
	MinMemoryMiB, MaxMemoryMiB int     // default 128 .. 16384
	// RunDeadline is the run deadline the workers enforce; the task timeout
	// is derived from it. Default 30m.
	RunDeadline time.Duration
	// TaskRetention keeps finished tasks visible in the Asynq UI. Default 1h.
	TaskRetention time.Duration
	// DefaultModel is used when a request names none. Default model.DefaultModel.
	DefaultModel string
	// RunRetention is how long run records are kept (run.StoreConfig); an
	// Idempotency-Key is remembered as long. Default 24h.
	RunRetention time.Duration

	// APIKeys are keys from the settings. With none here and none ever made
	// in Redis (KeyStore), the server is open: no key needed, no limits.
	APIKeys []APIKey
	// AuthCacheTTL is how long a lookup of a stored key (found or not) is
	// cached, hence how long a revoked key may still work. Default 10s.
	AuthCacheTTL time.Duration
	// RateLimit is requests per minute per key, shared by all replicas;
	// zero or less: no limit.
	RateLimit int

	// EventsHeartbeat is how often an idle event stream (SSE) sends a comment,
	// so that proxies keep it open. Default 15s.
	EventsHeartbeat time.Duration
	// WebhookGuard checks the callback URLs clients register.
	WebhookGuard webhook.Guard

	// ReadyFunc, if set, is an extra readiness check for /readyz.
	ReadyFunc func(context.Context) error
	// Pprof mounts Go's profiler at /debug/pprof/ (behind the API key when
	// keys are on). Default off.
	Pprof bool
	// Monitoring, if set, is mounted at /monitoring (the Asynq web UI).
	Monitoring http.Handler

	Logger   *slog.Logger
	Registry *prometheus.Registry // nil: no /metrics and no metrics
}

func (c *Config) setDefaults() {
	c.InstanceID = cmp.Or(c.InstanceID, run.NewID("api"))
	c.Provider = cmp.Or(c.Provider, "linux")
	c.SyncTimeout = cmp.Or(c.SyncTimeout, 50*time.Second)
	c.BodyLimit = cmp.Or(c.BodyLimit, "1M")
	if c.MaxWorking <= 0 {
		c.MaxWorking = 64 * runtime.GOMAXPROCS(0)
	}
	c.MinCPU = cmp.Or(c.MinCPU, 0.25)
	c.MaxCPU = cmp.Or(c.MaxCPU, 8)
	c.MinMemoryMiB = cmp.Or(c.MinMemoryMiB, 128)
	c.MaxMemoryMiB = cmp.Or(c.MaxMemoryMiB, 16384)
	c.RunDeadline = cmp.Or(c.RunDeadline, 30*time.Minute)
	c.TaskRetention = cmp.Or(c.TaskRetention, time.Hour)
	c.DefaultModel = cmp.Or(c.DefaultModel, model.DefaultModel)
	c.RunRetention = cmp.Or(c.RunRetention, 24*time.Hour)
	c.AuthCacheTTL = cmp.Or(c.AuthCacheTTL, 10*time.Second)
	c.EventsHeartbeat = cmp.Or(c.EventsHeartbeat, 15*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server serves the API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	echo    *echo.Echo
	client  *asynq.Client
	waiters *Waiters
	metrics *metrics
	auth    *authenticator
	limiter *limiter // nil: no rate limit
	// Run lifecycle: event streams, cancels of queued tasks, webhooks.
	events    *eventHub
	inspector *asynq.Inspector
	notifier  *webhook.Notifier
	// draining is closed when the process stops: waiting sync requests then
	// answer with the run id to poll instead of holding up the shutdown.
	draining  chan struct{}
	drainOnce sync.Once
	// working holds a token per offloaded request; idle hands work to the
	// goroutines of earlier offloaded work (offload).
	working chan struct{}
	idle    chan *offloaded
}

// New returns a server. Call Start before serving, so sync waits can be woken.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Redis == nil || cfg.Store == nil || cfg.Router == nil {
		return nil, errors.New("api: Redis, Store and Router are required")
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		client:   asynq.NewClientFromRedisClient(cfg.Redis),
		waiters:  NewWaiters(cfg.Redis, "oneshot:reply:"+cfg.InstanceID, cfg.Logger),
		draining: make(chan struct{}),
		working:  make(chan struct{}, cfg.MaxWorking),
		idle:     make(chan *offloaded),
		auth:     newAuthenticator(cfg.APIKeys, NewKeyStore(cfg.Redis), cfg.AuthCacheTTL),
		limiter:  newLimiter(cfg.Redis, cfg.RateLimit),
	}
	s.waiters.EndedFunc = cfg.Store.Ended
	s.events = newEventHub(cfg.Redis, cfg.Store, cfg.Logger)
	s.inspector = asynq.NewInspectorFromRedisClient(cfg.Redis)
	s.notifier = &webhook.Notifier{Client: s.client, Logger: cfg.Logger}
	s.metrics = newMetrics(cfg.Registry, s.waiters, s.working)
	s.echo = s.routes()
	return s, nil
}

// Start subscribes the process's reply channel. It returns once wake-ups can
// be heard; they are heard until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if err := s.waiters.Start(ctx); err != nil {
		return err
	}
	return s.events.Start(ctx)
}

// Drain makes waiting sync requests answer now with their run id (202).
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Waiting is the number of sync requests waiting for their run.
func (s *Server) Waiting() int { return s.waiters.Len() }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.log)
	e.Use(s.metrics.middleware)
	e.Use(middleware.Recover())
	e.Use(s.authenticate) // exempts health and metrics

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.cfg.Registry != nil {
		e.GET("/metrics", echo.WrapHandler(metricsHandler(s.cfg.Registry)))
	}
	if s.cfg.Pprof {
		e.Any("/debug/pprof/*", echo.WrapHandler(http.DefaultServeMux))
	}
	if s.cfg.Monitoring != nil {
		e.Any("/monitoring", echo.WrapHandler(s.cfg.Monitoring))
		e.Any("/monitoring/*", echo.WrapHandler(s.cfg.Monitoring))
	}

	// Route-level middleware, not group-level: a group with middleware
	// answers 404 instead of 405 for a known path with the wrong method.
	limit := middleware.BodyLimit(s.cfg.BodyLimit)
	e.POST("/agent/v1/execute", s.execute, limit)
	e.GET("/agent/v1/run/:id/status", s.runStatus)
	e.GET("/agent/v1/run/:id/details", s.runDetails)
	s.runRoutes(e)
	s.agentRoutes(e)
	return e
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "redis_unreachable", Message: fmt.Sprintf("redis unreachable: %v", err)}
	}
	if s.cfg.ReadyFunc != nil {
		if err := s.cfg.ReadyFunc(ctx); err != nil {
			return &Error{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "not_ready", Message: err.Error()}
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
