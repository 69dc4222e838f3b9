package model

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// named is a provider that only has a name.
type named string

func (n named) Name() string { return string(n) }
func (n named) Complete(context.Context, Request, Hooks) (*Response, error) {
	return &Response{}, nil
}

func TestRouterResolve(t *testing.T) {
	full := NewRouter(named(GatewayProvider), named("anthropic"), named("openai"))
	direct := NewRouter(nil, named("anthropic"))
	bare := NewRouter(nil)
	tests := []struct {
		name         string
		router       *Router
		id           string
		want         string   // provider name
		wantSettings []string // of a *NotConfiguredError
		wantErr      string
	}{
		{name: "direct wins over the gateway", router: full, id: "anthropic/claude-sonnet-4.6", want: "anthropic"},
		{name: "direct openai", router: full, id: "openai/gpt-4.1", want: "openai"},
		{name: "gateway fallback", router: full, id: "google/gemini-2.5-pro", want: GatewayProvider},
		{name: "builtin echo", router: bare, id: "builtin/echo", want: BuiltinProvider},
		{name: "builtin script", router: full, id: "builtin/script", want: BuiltinProvider},
		{name: "direct only", router: direct, id: "anthropic/claude-opus-4.1", want: "anthropic"},
		{name: "anthropic not configured", router: bare, id: DefaultModel,
			wantSettings: []string{"ONESHOT_ANTHROPIC_API_KEY", "ONESHOT_GATEWAY_BASE_URL"}},
		{name: "openai not configured", router: direct, id: "openai/gpt-4.1",
			wantSettings: []string{"ONESHOT_OPENAI_API_KEY", "ONESHOT_OPENAI_BASE_URL", "ONESHOT_GATEWAY_BASE_URL"}},
		{name: "other provider not configured", router: direct, id: "mistral/mistral-large",
			wantSettings: []string{"ONESHOT_GATEWAY_BASE_URL"}},
		{name: "unknown builtin", router: full, id: "builtin/nope", wantErr: "unknown built-in model; built-ins are builtin/echo, builtin/script"},
		{name: "empty", router: full, id: "", wantErr: `ids are "provider/name"`},
		{name: "no slash", router: full, id: "claude", wantErr: `ids are "provider/name"`},
		{name: "no provider", router: full, id: "/gpt-4.1", wantErr: `ids are "provider/name"`},
		{name: "no name", router: full, id: "openai/", wantErr: `ids are "provider/name"`},
		{name: "spaces", router: full, id: " openai/gpt-4.1", wantErr: `ids are "provider/name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.router.Resolve(tt.id)
			switch {
			case tt.wantSettings != nil:
				var nc *NotConfiguredError
				require.ErrorAs(t, err, &nc)
				require.Equal(t, tt.wantSettings, nc.Settings)
				require.Equal(t, tt.id, nc.Model)
				require.Contains(t, err.Error(), "set "+tt.wantSettings[0])
			case tt.wantErr != "":
				require.ErrorContains(t, err, tt.wantErr)
			default:
				require.NoError(t, err)
				require.Equal(t, tt.want, p.Name())
			}
		})
	}
}

func TestNewRouterFromConfig(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		wantProviders []string
		wantErr       string
	}{
		{name: "nothing set", wantProviders: []string{"builtin"}},
		{name: "anthropic key", cfg: Config{AnthropicAPIKey: "k"}, wantProviders: []string{"anthropic", "builtin"}},
		{name: "openai base url alone", cfg: Config{OpenAIBaseURL: "http://localhost:11434/v1"}, wantProviders: []string{"builtin", "openai"}},
		{name: "openai key", cfg: Config{OpenAIAPIKey: "k"}, wantProviders: []string{"builtin", "openai"}},
		{name: "gateway", cfg: Config{GatewayBaseURL: "https://openrouter.ai/api/v1", GatewayAPIKey: "k"}, wantProviders: []string{"builtin", "gateway"}},
		{name: "everything", cfg: Config{AnthropicAPIKey: "k", OpenAIAPIKey: "k", GatewayBaseURL: "https://gw.example/v1"},
			wantProviders: []string{"anthropic", "builtin", "openai", "gateway"}},
		{name: "gateway key without url", cfg: Config{GatewayAPIKey: "k"}, wantErr: "ONESHOT_GATEWAY_API_KEY is set but ONESHOT_GATEWAY_BASE_URL is not"},
		{name: "bad url", cfg: Config{OpenAIBaseURL: "localhost:11434"}, wantErr: "ONESHOT_OPENAI_BASE_URL"},
		{name: "small thinking budget", cfg: Config{AnthropicAPIKey: "k", AnthropicThinkingBudget: 100}, wantErr: "minimum is 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRouterFromConfig(tt.cfg, NewMetrics(nil))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantProviders, r.Providers())
			p, err := r.Resolve("builtin/echo")
			require.NoError(t, err)
			require.IsType(t, &instrumented{}, p, "providers are instrumented")
		})
	}
}
