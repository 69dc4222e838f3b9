package model

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultModel is used when a request names none, as in the reference API.
const DefaultModel = "anthropic/claude-sonnet-4.6"

// NotConfiguredError says that no provider can serve a model, and which
// settings would make one.
type NotConfiguredError struct {
	Model    string
	Settings []string // environment variables, any one of which would do
}

func (e *NotConfiguredError) Error() string {
	return fmt.Sprintf("model %q: its provider is not configured; set %s", e.Model, strings.Join(e.Settings, " or "))
}

// Router picks the provider for a model id.
type Router struct {
	direct  map[string]Provider // by provider name
	gateway Provider            // takes any "provider/name" id, or nil
}

// NewRouter returns a router over direct providers and an optional gateway
// (nil for none). The built-in offline models are always served, by Builtin
// unless a direct provider named "builtin" (an instrumented one) replaces it.
func NewRouter(gateway Provider, direct ...Provider) *Router {
	r := &Router{direct: map[string]Provider{}, gateway: gateway}
	r.direct[BuiltinProvider] = Builtin{}
	for _, p := range direct {
		r.direct[p.Name()] = p
	}
	return r
}

// Resolve returns the provider for a model id: a direct provider wins, then
// the gateway; otherwise a *NotConfiguredError. Ids are "provider/name".
func (r *Router) Resolve(id string) (Provider, error) {
	provider, name, ok := strings.Cut(id, "/")
	if !ok || provider == "" || name == "" || strings.TrimSpace(id) != id {
		return nil, fmt.Errorf("model %q: ids are \"provider/name\", e.g. %q", id, DefaultModel)
	}
	if provider == BuiltinProvider && !isBuiltin(id) {
		return nil, fmt.Errorf("model %q: unknown built-in model; built-ins are %s", id, strings.Join(BuiltinModels, ", "))
	}
	if p, ok := r.direct[provider]; ok {
		return p, nil
	}
	if r.gateway != nil {
		return r.gateway, nil
	}
	var settings []string
	switch provider {
	case "anthropic":
		settings = []string{"ONESHOT_ANTHROPIC_API_KEY"}
	case "openai":
		settings = []string{"ONESHOT_OPENAI_API_KEY", "ONESHOT_OPENAI_BASE_URL"}
	}
	settings = append(settings, "ONESHOT_GATEWAY_BASE_URL")
	return nil, &NotConfiguredError{Model: id, Settings: settings}
}

// Providers lists the names of the configured providers, "gateway" last if
// there is one, for a log line at start.
func (r *Router) Providers() []string {
	var names []string
	for name := range r.direct {
		names = append(names, name)
	}
	slices.Sort(names)
	if r.gateway != nil {
		names = append(names, r.gateway.Name())
	}
	return names
}
