// Package system wires oneshot's parts into processes: the API, the worker,
// or both on an embedded Redis (dev). main reads Config from the environment;
// tests fill it by hand and start the same processes on port 0.
package system

import (
	"fmt"
	"time"

	"github.com/oneshot-dev/oneshot/api"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/sandbox"
)

// Config is every setting of oneshot. The envconfig tags name the environment
// variables (with the ONESHOT_ prefix) and their defaults; the README lists them.
type Config struct {
	HTTPAddr   string `envconfig:"HTTP_ADDR" default:"127.0.0.1:8080"`
	WorkerAddr string `envconfig:"WORKER_ADDR" default:"127.0.0.1:9091"`
	RedisURL   string `envconfig:"REDIS_URL"`
	LogLevel   string `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat  string `envconfig:"LOG_FORMAT" default:"text"`

	SyncTimeout       time.Duration `envconfig:"SYNC_TIMEOUT" default:"50s"`
	BodyLimit         string        `envconfig:"BODY_LIMIT" default:"1M"`
	RunRetention      time.Duration `envconfig:"RUN_RETENTION" default:"24h"`
	TaskRetention     time.Duration `envconfig:"TASK_RETENTION" default:"1h"`
	Monitoring        string        `envconfig:"MONITORING" default:"on"`
	Pprof             bool          `envconfig:"PPROF" default:"false"`
	PrometheusURL     string        `envconfig:"PROMETHEUS_URL"`
	WorkerConcurrency int           `envconfig:"WORKER_CONCURRENCY" default:"10"`
	// TaskCheckInterval: zero means 1ms on a real Redis, 20ms on the embedded
	// one (every poll there runs Asynq's Lua in-process).
	TaskCheckInterval time.Duration `envconfig:"TASK_CHECK_INTERVAL"`
	ShutdownTimeout   time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s"`
	RunDeadline       time.Duration `envconfig:"RUN_DEADLINE" default:"30m"`
	MaxTurns          int           `envconfig:"MAX_TURNS" default:"50"`
	MaxTokens         int           `envconfig:"MAX_TOKENS" default:"2000000"`
	MaxOutputTokens   int           `envconfig:"MAX_OUTPUT_TOKENS" default:"8192"`

	SandboxDriver       string  `envconfig:"SANDBOX_DRIVER" default:"linux"`
	SandboxWarm         int     `envconfig:"SANDBOX_WARM" default:"2"`
	SandboxWorkspaceMiB int     `envconfig:"SANDBOX_WORKSPACE_MIB" default:"1024"`
	SandboxPidsMax      int     `envconfig:"SANDBOX_PIDS_MAX" default:"256"`
	SandboxMinCPU       float64 `envconfig:"SANDBOX_MIN_CPU" default:"0.25"`
	SandboxMaxCPU       float64 `envconfig:"SANDBOX_MAX_CPU" default:"8"`
	SandboxMinMemoryMiB int     `envconfig:"SANDBOX_MIN_MEMORY_MIB" default:"128"`
	SandboxMaxMemoryMiB int     `envconfig:"SANDBOX_MAX_MEMORY_MIB" default:"16384"`
	// RuntimeCommand overrides the runtime started in each sandbox; empty
	// means oneshot-runtime beside this binary, or else this binary with the
	// argument "agent".
	RuntimeCommand []string `envconfig:"RUNTIME_COMMAND"`
	// SandboxInit overrides the binary the linux driver executes as each
	// sandbox's init; empty means oneshot-runtime beside this binary, or else
	// this binary.
	SandboxInit string `envconfig:"SANDBOX_INIT"`
	// Driver, when set, replaces the driver SandboxDriver names: for
	// benchmarks that measure the system without a sandbox.
	Driver sandbox.Driver `ignored:"true"`

	DefaultModel string `envconfig:"DEFAULT_MODEL" default:"anthropic/claude-sonnet-4.6"`

	// APIKeys are org:key pairs; keys made with `oneshot keys create` live in
	// Redis. With no key anywhere the API is open (for dev).
	APIKeys []string `envconfig:"API_KEYS"`
	// AuthCacheTTL: how long the API caches a stored key's lookup, hence how
	// long a revoked key may still work. Zero means 10s.
	AuthCacheTTL time.Duration `envconfig:"AUTH_CACHE_TTL" default:"10s"`
	// RateLimit is requests per minute per API key, across replicas; 0 is off.
	RateLimit int `envconfig:"RATE_LIMIT" default:"600"`

	// Run lifecycle (docs/runs.md). EventsHeartbeat: the comment an idle
	// event stream sends so that proxies keep it open.
	EventsHeartbeat time.Duration `envconfig:"EVENTS_HEARTBEAT" default:"15s"`
	// WebhookSecret keys the X-Oneshot-Signature of webhook deliveries; unset,
	// each worker makes a random one (signatures then verify nowhere).
	WebhookSecret string `envconfig:"WEBHOOK_SECRET"`
	// WebhookAllowLoopback allows callback URLs on loopback addresses and
	// plain http: for local development only.
	WebhookAllowLoopback bool `envconfig:"WEBHOOK_ALLOW_LOOPBACK" default:"false"`
	// WebhookCAFile is a PEM file of CAs trusted for receivers, besides the
	// system's (a receiver with a private CA).
	WebhookCAFile      string        `envconfig:"WEBHOOK_CA_FILE"`
	WebhookTimeout     time.Duration `envconfig:"WEBHOOK_TIMEOUT" default:"10s"`
	WebhookRetryDelay  time.Duration `envconfig:"WEBHOOK_RETRY_DELAY" default:"10s"`
	WebhookConcurrency int           `envconfig:"WEBHOOK_CONCURRENCY" default:"10"`

	// Model providers: ONESHOT_ANTHROPIC_*, ONESHOT_OPENAI_*, ONESHOT_GATEWAY_*
	// and ONESHOT_MODEL_*; see model.Config.
	model.Config

	// Service-tool backends (docs/tools.md); a backend without a URL is off.
	LegalResearchURL    string `envconfig:"LEGAL_RESEARCH_URL"`
	LegalResearchAPIKey string `envconfig:"LEGAL_RESEARCH_API_KEY"`
	VaultURL            string `envconfig:"VAULT_URL"`
	VaultAPIKey         string `envconfig:"VAULT_API_KEY"`
}

// Validate checks the settings a user writes.
func (c *Config) Validate() error {
	switch c.Monitoring {
	case "on", "readonly", "off":
	default:
		return fmt.Errorf("ONESHOT_MONITORING is %q: use on, readonly or off", c.Monitoring)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("ONESHOT_LOG_FORMAT is %q: use text or json", c.LogFormat)
	}
	if c.SandboxMinCPU <= 0 || c.SandboxMaxCPU < c.SandboxMinCPU {
		return fmt.Errorf("ONESHOT_SANDBOX_MIN_CPU (%g) and ONESHOT_SANDBOX_MAX_CPU (%g): need 0 < min <= max", c.SandboxMinCPU, c.SandboxMaxCPU)
	}
	if c.SandboxMinMemoryMiB <= 0 || c.SandboxMaxMemoryMiB < c.SandboxMinMemoryMiB {
		return fmt.Errorf("ONESHOT_SANDBOX_MIN_MEMORY_MIB (%d) and ONESHOT_SANDBOX_MAX_MEMORY_MIB (%d): need 0 < min <= max", c.SandboxMinMemoryMiB, c.SandboxMaxMemoryMiB)
	}
	if c.WorkerConcurrency < 1 {
		return fmt.Errorf("ONESHOT_WORKER_CONCURRENCY is %d: need at least 1", c.WorkerConcurrency)
	}
	if _, err := api.ParseAPIKeys(c.APIKeys); err != nil {
		return fmt.Errorf("ONESHOT_API_KEYS: %w", err)
	}
	if c.AuthCacheTTL < 0 {
		return fmt.Errorf("ONESHOT_AUTH_CACHE_TTL is %s: need a positive duration such as 10s", c.AuthCacheTTL)
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("ONESHOT_RATE_LIMIT is %d: need requests per minute per key, or 0 for no limit", c.RateLimit)
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{{"ONESHOT_EVENTS_HEARTBEAT", c.EventsHeartbeat}, {"ONESHOT_WEBHOOK_TIMEOUT", c.WebhookTimeout}, {"ONESHOT_WEBHOOK_RETRY_DELAY", c.WebhookRetryDelay}} {
		if d.value < 0 {
			return fmt.Errorf("%s is %s: need a positive duration", d.name, d.value)
		}
	}
	if c.WebhookConcurrency < 0 {
		return fmt.Errorf("ONESHOT_WEBHOOK_CONCURRENCY is %d: need at least 1", c.WebhookConcurrency)
	}
	if c.TaskCheckInterval < 0 {
		return fmt.Errorf("ONESHOT_TASK_CHECK_INTERVAL is %s: need a positive duration such as 1ms", c.TaskCheckInterval)
	}
	return nil
}
