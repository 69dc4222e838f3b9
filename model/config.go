package model

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Config holds the model settings of a worker. main reads them from the
// environment: the envconfig tags give each variable's name after the
// ONESHOT_ prefix, as envconfig.Process("oneshot", &cfg) or an embedded
// (anonymous) Config field reads them. Zero values mean the defaults noted
// on each field.
type Config struct {
	// AnthropicAPIKey enables "anthropic/..." models directly.
	AnthropicAPIKey string `envconfig:"ANTHROPIC_API_KEY"`
	// AnthropicBaseURL overrides the Anthropic API root (without /v1).
	// Default DefaultAnthropicBaseURL.
	AnthropicBaseURL string `envconfig:"ANTHROPIC_BASE_URL"`
	// OpenAIAPIKey enables "openai/..." models directly.
	OpenAIAPIKey string `envconfig:"OPENAI_API_KEY"`
	// OpenAIBaseURL points "openai/..." models at any OpenAI-compatible
	// server (vLLM, Ollama, LiteLLM); it enables them even without a key.
	// Default DefaultOpenAIBaseURL.
	OpenAIBaseURL string `envconfig:"OPENAI_BASE_URL"`
	// GatewayBaseURL enables every "provider/name" id that has no direct
	// provider, sent in full to this OpenAI-compatible gateway, e.g.
	// https://openrouter.ai/api/v1. Default: no gateway.
	GatewayBaseURL string `envconfig:"GATEWAY_BASE_URL"`
	// GatewayAPIKey is the gateway's bearer token. Default: none sent.
	GatewayAPIKey string `envconfig:"GATEWAY_API_KEY"`
	// MaxRetries bounds retries of one model call. Default
	// DefaultMaxRetries (4); negative: no retry.
	MaxRetries int `envconfig:"MODEL_MAX_RETRIES"`
	// RetryBaseDelay is the first backoff, doubled on each retry. Default
	// DefaultRetryBaseDelay (500ms).
	RetryBaseDelay time.Duration `envconfig:"MODEL_RETRY_BASE_DELAY"`
	// RetryMaxDelay caps one backoff, Retry-After included. Default
	// DefaultRetryMaxDelay (30s).
	RetryMaxDelay time.Duration `envconfig:"MODEL_RETRY_MAX_DELAY"`
	// MaxTokens is the output limit of a call whose request sets none.
	// Default: DefaultAnthropicMaxTokens (8192) for Anthropic, which
	// requires one; none sent to OpenAI-compatible servers.
	MaxTokens int `envconfig:"MODEL_MAX_TOKENS"`
	// AnthropicThinkingBudget turns on Anthropic's extended thinking with
	// this many tokens (at least 1024). Default 0: off.
	AnthropicThinkingBudget int `envconfig:"ANTHROPIC_THINKING_BUDGET"`
	// DisableStreaming asks providers for whole answers; live text events
	// then come in one piece. Default false: stream.
	DisableStreaming bool `envconfig:"MODEL_DISABLE_STREAMING"`
	// HTTPClient sends provider requests. Default http.DefaultClient.
	HTTPClient *http.Client `ignored:"true"`
}

// Validate checks the settings a user writes.
func (c Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{
		{"ONESHOT_ANTHROPIC_BASE_URL", c.AnthropicBaseURL},
		{"ONESHOT_OPENAI_BASE_URL", c.OpenAIBaseURL},
		{"ONESHOT_GATEWAY_BASE_URL", c.GatewayBaseURL},
	} {
		if u.value == "" {
			continue
		}
		if p, err := url.Parse(u.value); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s=%q: want an http(s) URL", u.name, u.value))
		}
	}
	if c.GatewayAPIKey != "" && c.GatewayBaseURL == "" {
		errs = append(errs, errors.New("ONESHOT_GATEWAY_API_KEY is set but ONESHOT_GATEWAY_BASE_URL is not"))
	}
	if c.AnthropicThinkingBudget != 0 && c.AnthropicThinkingBudget < 1024 {
		errs = append(errs, fmt.Errorf("ONESHOT_ANTHROPIC_THINKING_BUDGET=%d: the minimum is 1024", c.AnthropicThinkingBudget))
	}
	if c.RetryBaseDelay < 0 || c.RetryMaxDelay < 0 || c.MaxTokens < 0 {
		errs = append(errs, errors.New("ONESHOT_MODEL_RETRY_BASE_DELAY, ONESHOT_MODEL_RETRY_MAX_DELAY and ONESHOT_MODEL_MAX_TOKENS may not be negative"))
	}
	return errors.Join(errs...)
}

// NewRouterFromConfig validates cfg and returns a router over the providers
// it configures: Anthropic when its key is set, OpenAI when its key or base
// URL is set, the gateway when its base URL is set, and the built-ins. All
// are instrumented with m when m is not nil.
func NewRouterFromConfig(cfg Config, m *Metrics) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model settings: %w", err)
	}
	direct := []Provider{Instrument(Builtin{}, m)}
	if cfg.AnthropicAPIKey != "" {
		direct = append(direct, Instrument(NewAnthropic(AnthropicConfig{
			APIKey:           cfg.AnthropicAPIKey,
			BaseURL:          cfg.AnthropicBaseURL,
			HTTPClient:       cfg.HTTPClient,
			MaxTokens:        cfg.MaxTokens,
			ThinkingBudget:   cfg.AnthropicThinkingBudget,
			DisableStreaming: cfg.DisableStreaming,
			MaxRetries:       cfg.MaxRetries,
			RetryBaseDelay:   cfg.RetryBaseDelay,
			RetryMaxDelay:    cfg.RetryMaxDelay,
		}), m))
	}
	openai := func(key, base string) OpenAIConfig {
		return OpenAIConfig{
			APIKey:           key,
			BaseURL:          base,
			HTTPClient:       cfg.HTTPClient,
			MaxTokens:        cfg.MaxTokens,
			DisableStreaming: cfg.DisableStreaming,
			MaxRetries:       cfg.MaxRetries,
			RetryBaseDelay:   cfg.RetryBaseDelay,
			RetryMaxDelay:    cfg.RetryMaxDelay,
		}
	}
	if cfg.OpenAIAPIKey != "" || cfg.OpenAIBaseURL != "" {
		direct = append(direct, Instrument(NewOpenAI(openai(cfg.OpenAIAPIKey, cfg.OpenAIBaseURL)), m))
	}
	var gateway Provider
	if cfg.GatewayBaseURL != "" {
		gateway = Instrument(NewGateway(openai(cfg.GatewayAPIKey, cfg.GatewayBaseURL)), m)
	}
	return NewRouter(gateway, direct...), nil
}
