package system

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/api"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/sandbox"
	"github.com/oneshot-dev/oneshot/service"
	"github.com/oneshot-dev/oneshot/webhook"
	"github.com/oneshot-dev/oneshot/worker"
)

// Roles says which parts a process runs.
type Roles struct {
	API    bool
	Worker bool
}

// System is one running oneshot process.
type System struct {
	cfg Config
	log *slog.Logger

	Redis    redis.UniversalClient
	Store    *run.Store
	Registry *prometheus.Registry
	mini     *miniredis.Miniredis
	stopMini chan struct{}

	API     *api.Server
	apiHTTP *http.Server
	// APIAddr is the address the API listens on (port 0 resolved).
	APIAddr string

	Worker     *worker.Worker
	Pool       *sandbox.Pool
	Runtime    SandboxRuntime // what the worker's sandboxes run
	workerHTTP *http.Server
	// WorkerAddr is the address of the worker's health and metrics endpoint,
	// when it runs without the API.
	WorkerAddr string

	cancel context.CancelFunc
}

// RedisURL returns the URL of the Redis the system uses (the embedded one's in dev).
func (s *System) RedisURL() string { return s.cfg.RedisURL }

// Embedded reports whether the system runs on an embedded Redis.
func (s *System) Embedded() bool { return s.mini != nil }

// Start starts the roles and returns once they serve.
func Start(ctx context.Context, cfg Config, roles Roles, log *slog.Logger) (_ *System, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &System{cfg: cfg, log: log, Registry: prometheus.NewRegistry()}
	ctx, s.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			s.Shutdown(context.Background())
		}
	}()
	s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if s.cfg.RedisURL == "" {
		if !(roles.API && roles.Worker) {
			return nil, errors.New("ONESHOT_REDIS_URL is required (e.g. redis://127.0.0.1:6379/0); `oneshot dev` runs on an embedded Redis instead")
		}
		if err := s.startEmbeddedRedis(); err != nil {
			return nil, err
		}
	}
	if s.Redis, err = NewRedis(s.cfg.RedisURL); err != nil {
		return nil, fmt.Errorf("ONESHOT_REDIS_URL: %w", err)
	}
	s.Store = run.NewStore(run.StoreConfig{Redis: s.Redis, Retention: cfg.RunRetention})

	router, err := model.NewRouterFromConfig(cfg.Config, model.NewMetrics(s.Registry))
	if err != nil {
		return nil, fmt.Errorf("model settings: %w", err)
	}
	if roles.Worker {
		if err := s.startWorker(ctx, router, !roles.API); err != nil {
			return nil, err
		}
	}
	if roles.API {
		if err := s.startAPI(ctx, router); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *System) startEmbeddedRedis() error {
	m, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("start embedded redis: %w", err)
	}
	s.mini = m
	s.cfg.RedisURL = "redis://" + m.Addr()
	if s.cfg.TaskCheckInterval == 0 {
		s.cfg.TaskCheckInterval = 20 * time.Millisecond
	}
	// miniredis does not expire keys on its own: move its clock with ours.
	s.stopMini = make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stopMini:
				return
			case <-t.C:
				m.FastForward(time.Second)
			}
		}
	}()
	return nil
}

func (s *System) startWorker(ctx context.Context, router *model.Router, serveHTTP bool) error {
	var err error
	if s.Runtime, err = ResolveRuntime(s.cfg); err != nil {
		return err
	}
	if len(s.cfg.RuntimeCommand) == 0 && filepath.Base(s.Runtime.Command[0]) != RuntimeBinary {
		s.log.Warn("sandbox runtime: "+RuntimeBinary+" is not installed beside this binary; sandboxes run `oneshot agent`, "+
			"which starts a few milliseconds slower (make build installs both)", "command", s.Runtime.Command)
	}
	driver := s.cfg.Driver
	if driver == nil {
		if driver, err = NewDriver(s.cfg, s.Runtime, s.log); err != nil {
			return err
		}
	}
	if err := driver.Check(ctx); err != nil {
		return fmt.Errorf("the worker cannot create sandboxes with the %q driver: %w", driver.Name(), err)
	}
	warm := s.cfg.SandboxWarm
	if warm == 0 {
		warm = -1 // the pool reads zero as its default; zero here means none
	}
	s.Pool = sandbox.NewPool(sandbox.PoolConfig{
		Driver:     driver,
		Warm:       warm,
		Deadline:   s.cfg.RunDeadline + time.Minute,
		Registerer: s.Registry,
		Logger:     s.log,
	})
	rootCAs, err := webhookRootCAs(s.cfg.WebhookCAFile)
	if err != nil {
		return err
	}
	if s.cfg.WebhookAllowLoopback {
		s.log.Warn("ONESHOT_WEBHOOK_ALLOW_LOOPBACK is on: webhooks may reach loopback addresses and plain http; for local development only")
	}
	s.Worker, err = worker.New(worker.Config{
		Redis:              s.Redis,
		Store:              s.Store,
		Pool:               s.Pool,
		Router:             router,
		Concurrency:        s.cfg.WorkerConcurrency,
		TaskCheckInterval:  s.cfg.TaskCheckInterval,
		ShutdownTimeout:    s.cfg.ShutdownTimeout,
		RunDeadline:        s.cfg.RunDeadline,
		MaxTurns:           s.cfg.MaxTurns,
		MaxTokens:          s.cfg.MaxTokens,
		MaxOutputTokens:    s.cfg.MaxOutputTokens,
		WebhookSecret:      []byte(s.cfg.WebhookSecret),
		WebhookGuard:       webhook.Guard{AllowLoopback: s.cfg.WebhookAllowLoopback},
		WebhookRootCAs:     rootCAs,
		WebhookTimeout:     s.cfg.WebhookTimeout,
		WebhookRetryDelay:  s.cfg.WebhookRetryDelay,
		WebhookConcurrency: s.cfg.WebhookConcurrency,
		Logger:             s.log,
		Registerer:         s.Registry,
		HostTools: service.New(service.Config{
			LegalResearchURL: s.cfg.LegalResearchURL, LegalResearchAPIKey: s.cfg.LegalResearchAPIKey,
			VaultURL: s.cfg.VaultURL, VaultAPIKey: s.cfg.VaultAPIKey,
			Logger: s.log, Registerer: s.Registry,
		}),
	})
	if err != nil {
		return err
	}
	if err := s.Worker.Start(); err != nil {
		return err
	}
	if !serveHTTP {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Store.Ping(ctx); err != nil {
			http.Error(w, fmt.Sprintf(`{"status":"not ready","error":%q}`, "redis unreachable: "+err.Error()), http.StatusServiceUnavailable)
			return
		}
		if err := driver.Check(ctx); err != nil {
			http.Error(w, fmt.Sprintf(`{"status":"not ready","error":%q}`, "cannot create sandboxes: "+err.Error()), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry}))
	s.workerHTTP, s.WorkerAddr, err = serve(s.cfg.WorkerAddr, mux, time.Minute, s.log)
	return err
}

func (s *System) startAPI(ctx context.Context, router *model.Router) error {
	// Asynq's queue metrics (asynq_queue_size, asynq_queue_latency_seconds,
	// asynq_tasks_*) are read from Redis at each scrape: API processes export
	// them, workers do not, so N workers do not ask Redis N times.
	s.Registry.MustRegister(asynqmetrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(s.Redis)))
	var monitoring http.Handler
	if s.cfg.Monitoring != "off" {
		connOpt, err := asynq.ParseRedisURI(s.cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("ONESHOT_REDIS_URL for the Asynq UI: %w", err)
		}
		monitoring = asynqmon.New(asynqmon.Options{
			RootPath:          "/monitoring",
			RedisConnOpt:      connOpt,
			ReadOnly:          s.cfg.Monitoring == "readonly",
			PrometheusAddress: s.cfg.PrometheusURL,
		})
	}
	keys, err := api.ParseAPIKeys(s.cfg.APIKeys)
	if err != nil {
		return fmt.Errorf("ONESHOT_API_KEYS: %w", err)
	}
	s.API, err = api.New(api.Config{
		Redis:           s.Redis,
		Store:           s.Store,
		Router:          router,
		Provider:        s.cfg.SandboxDriver,
		SyncTimeout:     s.cfg.SyncTimeout,
		BodyLimit:       s.cfg.BodyLimit,
		MinCPU:          s.cfg.SandboxMinCPU,
		MaxCPU:          s.cfg.SandboxMaxCPU,
		MinMemoryMiB:    s.cfg.SandboxMinMemoryMiB,
		MaxMemoryMiB:    s.cfg.SandboxMaxMemoryMiB,
		RunDeadline:     s.cfg.RunDeadline,
		TaskRetention:   s.cfg.TaskRetention,
		DefaultModel:    s.cfg.DefaultModel,
		RunRetention:    s.cfg.RunRetention,
		APIKeys:         keys,
		AuthCacheTTL:    s.cfg.AuthCacheTTL,
		RateLimit:       s.cfg.RateLimit,
		Monitoring:      monitoring,
		Pprof:           s.cfg.Pprof,
		EventsHeartbeat: s.cfg.EventsHeartbeat,
		WebhookGuard:    webhook.Guard{AllowLoopback: s.cfg.WebhookAllowLoopback},
		Logger:          s.log,
		Registry:        s.Registry,
	})
	if err != nil {
		return err
	}
	if err := s.API.Start(ctx); err != nil {
		return err
	}
	// Sync requests are long: the write timeout must outlast the sync wait.
	s.apiHTTP, s.APIAddr, err = serve(s.cfg.HTTPAddr, s.API.Handler(), s.cfg.SyncTimeout+30*time.Second, s.log)
	return err
}

// serve listens on addr and serves h in the background.
func serve(addr string, h http.Handler, writeTimeout time.Duration, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // slow-loris
		ReadTimeout:       time.Minute,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", addr, "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

// Shutdown stops in order: no new requests; waiting sync requests answered;
// running runs finished or handed back; then the sandboxes and Redis.
func (s *System) Shutdown(ctx context.Context) error {
	var errs []error
	if s.apiHTTP != nil {
		s.API.Drain()
		errs = append(errs, s.apiHTTP.Shutdown(ctx))
	}
	if s.Worker != nil {
		s.Worker.Shutdown()
	}
	if s.workerHTTP != nil {
		errs = append(errs, s.workerHTTP.Shutdown(ctx))
	}
	if s.Pool != nil {
		errs = append(errs, s.Pool.Close())
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.Redis != nil {
		errs = append(errs, s.Redis.Close())
	}
	if s.mini != nil {
		close(s.stopMini)
		s.mini.Close()
	}
	return errors.Join(errs...)
}

// webhookRootCAs returns the system's CAs plus those of file, or nil (the
// system's) when file is empty.
func webhookRootCAs(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ONESHOT_WEBHOOK_CA_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ONESHOT_WEBHOOK_CA_FILE: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// RuntimeBinary is the runtime's own binary. Installed beside the oneshot
// binary, it is the default runtime and the linux driver's sandbox init:
// it starts in about a millisecond, the server's binary in about five.
const RuntimeBinary = "oneshot-runtime"

// SandboxRuntime is what each sandbox runs: its init (linux driver), then the
// runtime command.
type SandboxRuntime struct {
	Init    string
	Command []string
}

// ResolveRuntime applies the defaults of ONESHOT_RUNTIME_COMMAND and
// ONESHOT_SANDBOX_INIT: oneshot-runtime beside this binary when it is
// installed, else this binary (with "agent" as the runtime).
func ResolveRuntime(cfg Config) (SandboxRuntime, error) {
	exe, err := os.Executable()
	if err != nil {
		return SandboxRuntime{}, fmt.Errorf("find this binary: %w", err)
	}
	rt := SandboxRuntime{Init: cfg.SandboxInit, Command: cfg.RuntimeCommand}
	if lean := filepath.Join(filepath.Dir(exe), RuntimeBinary); isExecutable(lean) {
		rt.Init = cmp.Or(rt.Init, lean)
		if len(rt.Command) == 0 {
			rt.Command = []string{lean}
		}
	}
	rt.Init = cmp.Or(rt.Init, exe)
	if len(rt.Command) == 0 {
		rt.Command = []string{exe, "agent"}
	}
	return rt, nil
}

// NewDriver returns the sandbox driver the configuration names, running rt.
func NewDriver(cfg Config, rt SandboxRuntime, log *slog.Logger) (sandbox.Driver, error) {
	d, err := sandbox.NewDriver(cfg.SandboxDriver, sandbox.Config{
		Command:      rt.Command,
		Init:         rt.Init,
		WorkspaceMiB: cfg.SandboxWorkspaceMiB,
		PidsMax:      cfg.SandboxPidsMax,
		Logger:       log,
	})
	if err != nil {
		return nil, fmt.Errorf("ONESHOT_SANDBOX_DRIVER: %w", err)
	}
	return d, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
