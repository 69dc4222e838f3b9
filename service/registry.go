// Package service runs the service tools: the tools of the agent catalog that
// run on the host (the worker), not in the sandbox, because they need the
// network and credentials that never enter a sandbox.
//
// A Registry maps each tool's API name (as in agent.Catalog) to a handler and
// implements the worker's HostTools. Every handler gets the run's scope with
// the call: vault tools only see the run's vaultIds, narrowed to its
// objectIds when it has any. Backends are plain HTTP services configured by
// URL and API key; docs/tools.md describes what they must answer.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oneshot-dev/oneshot/worker"
)

// Config configures a Registry. Zero values mean the documented defaults; a
// backend without a URL is off, and its tools refuse every call saying so.
type Config struct {
	// LegalResearchURL is the endpoint legal-research.search POSTs to
	// (ONESHOT_LEGAL_RESEARCH_URL).
	LegalResearchURL string
	// LegalResearchAPIKey is sent as a Bearer token, if set.
	LegalResearchAPIKey string
	// VaultURL is the base URL of the vault backend (ONESHOT_VAULT_URL).
	VaultURL string
	// VaultAPIKey is sent as a Bearer token, if set.
	VaultAPIKey string

	// HTTPClient makes the backend calls. Default: a client of its own with
	// the default transport; Timeout bounds each call.
	HTTPClient *http.Client
	// Timeout bounds each backend call. Default 30s.
	Timeout time.Duration
	// MaxResponseBytes bounds what is read of a backend's answer. Default 8 MiB.
	MaxResponseBytes int
	// MaxOutputBytes bounds what a tool returns to the model. Default 64 KiB.
	MaxOutputBytes int

	Logger     *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // nil: metrics are not registered
}

func (c *Config) setDefaults() {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	c.Timeout = cmp.Or(c.Timeout, 30*time.Second)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, 8<<20)
	c.MaxOutputBytes = cmp.Or(c.MaxOutputBytes, 64<<10)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the backend URLs: each must be empty or an http(s) URL.
func (c *Config) Validate() error {
	for _, u := range []struct{ env, url string }{
		{"ONESHOT_LEGAL_RESEARCH_URL", c.LegalResearchURL},
		{"ONESHOT_VAULT_URL", c.VaultURL},
	} {
		if u.url == "" {
			continue
		}
		if _, err := parseBaseURL(u.url); err != nil {
			return fmt.Errorf("%s: %w", u.env, err)
		}
	}
	return nil
}

// HandlerFunc runs one service-tool call and returns the text for the model.
// Its errors go back to the model as the tool's result.
type HandlerFunc func(ctx context.Context, call worker.HostToolCall) (string, error)

// Registry runs service tools by name. It implements worker.HostTools.
type Registry struct {
	cfg      Config
	log      *slog.Logger
	handlers map[string]HandlerFunc
	metrics  *metrics
}

var _ worker.HostTools = (*Registry)(nil)

// New returns a registry of the built-in service tools: legal-research.search,
// vault.list, vault.search and vault.read.
func New(cfg Config) *Registry {
	cfg.setDefaults()
	r := &Registry{cfg: cfg, log: cfg.Logger, handlers: map[string]HandlerFunc{}, metrics: newMetrics(cfg.Registerer)}
	legal := newBackend("legal research", "ONESHOT_LEGAL_RESEARCH_URL", cfg.LegalResearchURL, cfg.LegalResearchAPIKey, cfg)
	vault := &vaults{
		backend: newBackend("vault", "ONESHOT_VAULT_URL", cfg.VaultURL, cfg.VaultAPIKey, cfg),
		window:  max(cfg.MaxOutputBytes-256, 1), // room for the note on where to read on
	}
	r.Handle(toolLegalResearchSearch, legalResearchSearch(legal))
	r.Handle(toolVaultList, vault.list)
	r.Handle(toolVaultSearch, vault.search)
	r.Handle(toolVaultRead, vault.read)
	return r
}

// Handle sets the handler of a tool, by its API name. Call it before the
// registry is in use: it is not safe to call while Run runs.
func (r *Registry) Handle(name string, h HandlerFunc) { r.handlers[name] = h }

// Names returns the names of the tools the registry runs, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Run runs one call. The worker has already checked that the run was offered
// the tool; the scope (vaults, objects) is checked here, by each tool.
func (r *Registry) Run(ctx context.Context, call worker.HostToolCall) (string, error) {
	start := time.Now()
	h, ok := r.handlers[call.Tool]
	label := call.Tool
	if !ok {
		label = "unknown"
	}
	var out string
	var err error
	if ok {
		out, err = safeRun(ctx, h, call)
	} else {
		err = refuse(ErrUnknownTool, "tool %q has no backend on this server", call.Tool)
	}
	result := resultOf(err)
	r.metrics.observe(label, result, time.Since(start))
	switch result {
	case "error":
		r.log.Warn("service tool failed", "run", call.RunID, "tool", call.Tool, "err", err, "duration", time.Since(start))
	default:
		r.log.Debug("service tool", "run", call.RunID, "tool", call.Tool, "result", result, "err", err, "duration", time.Since(start))
	}
	if err != nil {
		return "", err
	}
	return capText(out, r.cfg.MaxOutputBytes), nil
}

// safeRun runs a handler; a panic fails the call, not the worker.
func safeRun(ctx context.Context, h HandlerFunc, call worker.HostToolCall) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("tool %s crashed: %v", call.Tool, p)
		}
	}()
	return h(ctx, call)
}

// Kinds of refusals: calls that were not made because of the server's
// configuration, the run's scope, or the call's input.
var (
	ErrNotConfigured = errors.New("service: not configured")
	ErrOutOfScope    = errors.New("service: out of the run's scope")
	ErrInvalidInput  = errors.New("service: invalid input")
	ErrUnknownTool   = errors.New("service: unknown tool")
)

// refusal is an error whose message is for the model and whose kind is one
// of the Err values above.
type refusal struct {
	kind error
	msg  string
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// resultOf names the outcome of a call for metrics: ok, refused or error.
func resultOf(err error) string {
	var r *refusal
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &r):
		return "refused"
	}
	return "error"
}

// capText keeps the first max bytes of s, cut at a rune boundary.
func capText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("\n[output truncated: %d of %d bytes shown]", cut, len(s))
}

// clampLimit returns limit within [1, hi], or def when it is not set.
func clampLimit(limit, def, hi int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, hi)
}

// required reports an empty required field.
func required(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return refuse(ErrInvalidInput, "%s is required", name)
	}
	return nil
}
