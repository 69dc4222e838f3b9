package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/agent"
	"github.com/oneshot-dev/oneshot/worker"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // failures are logged; tests make many
	os.Exit(m.Run())
}

// request is what a fake backend saw of one request.
type request struct {
	Method, Path, EscapedPath string
	Auth, RunID, ContentType  string
	Body                      string
}

// fakeBackend is an HTTP backend that records its requests.
type fakeBackend struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
}

func newFakeBackend(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, body string)) *fakeBackend {
	t.Helper()
	f := &fakeBackend{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, request{
			Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(),
			Auth: r.Header.Get("Authorization"), RunID: r.Header.Get("X-Oneshot-Run-Id"),
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
		})
		f.mu.Unlock()
		handle(w, r, string(b))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeBackend) seen() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

func call(tool, input string, vaults, objects []string) worker.HostToolCall {
	return worker.HostToolCall{RunID: "run_t", Tool: tool, Input: []byte(input), VaultIDs: vaults, ObjectIDs: objects}
}

func TestCatalogHostToolsHaveHandlers(t *testing.T) {
	r := New(Config{})
	var host []string
	for _, spec := range agent.Catalog {
		if spec.Host {
			host = append(host, spec.Name)
		}
	}
	require.ElementsMatch(t, host, r.Names())
}

func TestLegalResearchSearch(t *testing.T) {
	backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"results":[{"title":"Smith v. Jones","citation":"123 F.3d 456"}]}`)
	})
	r := New(Config{LegalResearchURL: backend.URL + "/v1/search/", LegalResearchAPIKey: "lr-key"})

	out, err := r.Run(context.Background(), call("legal-research.search", `{"query":"implied warranty","jurisdiction":"US-CA"}`, nil, nil))
	require.NoError(t, err)
	require.Equal(t, `{"results":[{"title":"Smith v. Jones","citation":"123 F.3d 456"}]}`, out)

	out, err = r.Run(context.Background(), call("legal-research.search", `{"query":"estoppel","limit":1000}`, nil, nil))
	require.NoError(t, err)

	seen := backend.seen()
	require.Len(t, seen, 2)
	require.Equal(t, request{
		Method: "POST", Path: "/v1/search", EscapedPath: "/v1/search",
		Auth: "Bearer lr-key", RunID: "run_t", ContentType: "application/json",
		Body: `{"query":"implied warranty","jurisdiction":"US-CA","limit":10}`,
	}, seen[0])
	require.JSONEq(t, `{"query":"estoppel","limit":100}`, seen[1].Body, "no jurisdiction; the limit is capped")
}

func TestLegalResearchSearchRefusals(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		_, err := New(Config{}).Run(context.Background(), call("legal-research.search", `{"query":"x"}`, nil, nil))
		require.EqualError(t, err, "legal-research.search is not configured on this server: set ONESHOT_LEGAL_RESEARCH_URL")
		require.ErrorIs(t, err, ErrNotConfigured)
	})
	t.Run("bad URL", func(t *testing.T) {
		cfg := Config{LegalResearchURL: "ftp://example.com"}
		require.ErrorContains(t, cfg.Validate(), "ONESHOT_LEGAL_RESEARCH_URL")
		_, err := New(cfg).Run(context.Background(), call("legal-research.search", `{"query":"x"}`, nil, nil))
		require.ErrorIs(t, err, ErrNotConfigured)
	})
	t.Run("invalid input never reaches the backend", func(t *testing.T) {
		backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {})
		r := New(Config{LegalResearchURL: backend.URL})
		for _, input := range []string{`{}`, `{"query":"  "}`, `{"query":5}`, `[`} {
			_, err := r.Run(context.Background(), call("legal-research.search", input, nil, nil))
			require.ErrorIs(t, err, ErrInvalidInput, input)
		}
		require.Empty(t, backend.seen())
	})
}

func TestBackendErrors(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
			http.Error(w, "database\n  down", http.StatusInternalServerError)
		})
		_, err := New(Config{LegalResearchURL: backend.URL + "/search"}).Run(context.Background(), call("legal-research.search", `{"query":"x"}`, nil, nil))
		require.EqualError(t, err, "legal research backend: POST /search answered 500 Internal Server Error: database down")
		var be *BackendError
		require.ErrorAs(t, err, &be)
		require.Equal(t, http.StatusInternalServerError, be.Status)
	})
	t.Run("timeout", func(t *testing.T) {
		backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
			<-r.Context().Done()
		})
		start := time.Now()
		_, err := New(Config{VaultURL: backend.URL, Timeout: 100 * time.Millisecond}).Run(context.Background(), call("vault.list", `{}`, []string{"v1"}, nil))
		require.EqualError(t, err, "vault backend: GET /vaults/v1/objects: no answer within 100ms")
		require.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("unreachable", func(t *testing.T) {
		backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {})
		url := backend.URL
		backend.Close()
		_, err := New(Config{VaultURL: url}).Run(context.Background(), call("vault.list", `{}`, []string{"v1"}, nil))
		require.ErrorContains(t, err, "vault backend: GET /vaults/v1/objects: ")
		require.ErrorContains(t, err, "cannot reach the backend: ")
		require.NotContains(t, err.Error(), strings.TrimPrefix(url, "http://"), "the backend's address stays out of the model's view")
	})
	t.Run("output cap", func(t *testing.T) {
		backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
			io.WriteString(w, strings.Repeat("é", 100_000))
		})
		out, err := New(Config{LegalResearchURL: backend.URL}).Run(context.Background(), call("legal-research.search", `{"query":"x"}`, nil, nil))
		require.NoError(t, err)
		require.Less(t, len(out), 65<<10)
		require.Contains(t, out, "[output truncated: 65536 of 200000 bytes shown]")
	})
	t.Run("unknown tool", func(t *testing.T) {
		_, err := New(Config{}).Run(context.Background(), call("vault.upload", `{}`, nil, nil))
		require.ErrorIs(t, err, ErrUnknownTool)
	})
	t.Run("a panicking handler", func(t *testing.T) {
		r := New(Config{})
		r.Handle("boom", func(context.Context, worker.HostToolCall) (string, error) { panic("oops") })
		_, err := r.Run(context.Background(), call("boom", `{}`, nil, nil))
		require.EqualError(t, err, "tool boom crashed: oops")
	})
}

func TestMetrics(t *testing.T) {
	backend := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
		if strings.Contains(body, "fail") {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	reg := prometheus.NewRegistry()
	r := New(Config{LegalResearchURL: backend.URL, Registerer: reg})
	New(Config{Registerer: reg}) // a second registry shares the series
	ctx := context.Background()
	r.Run(ctx, call("legal-research.search", `{"query":"a"}`, nil, nil))
	r.Run(ctx, call("legal-research.search", `{"query":"a"}`, nil, nil))
	r.Run(ctx, call("legal-research.search", `{"query":"fail"}`, nil, nil))
	r.Run(ctx, call("legal-research.search", `{}`, nil, nil))
	r.Run(ctx, call("vault.list", `{}`, nil, nil))
	r.Run(ctx, call("nope", `{}`, nil, nil))

	calls := r.metrics.calls
	require.Equal(t, 2.0, testutil.ToFloat64(calls.WithLabelValues("legal-research.search", "ok")))
	require.Equal(t, 1.0, testutil.ToFloat64(calls.WithLabelValues("legal-research.search", "error")))
	require.Equal(t, 1.0, testutil.ToFloat64(calls.WithLabelValues("legal-research.search", "refused")))
	require.Equal(t, 1.0, testutil.ToFloat64(calls.WithLabelValues("vault.list", "refused")))
	require.Equal(t, 1.0, testutil.ToFloat64(calls.WithLabelValues("unknown", "refused")))
	n, err := testutil.GatherAndCount(reg, "oneshot_tool_calls_total")
	require.NoError(t, err)
	require.Equal(t, 5, n)
}

func TestResultOf(t *testing.T) {
	require.Equal(t, "ok", resultOf(nil))
	require.Equal(t, "refused", resultOf(refuse(ErrOutOfScope, "x")))
	require.Equal(t, "error", resultOf(errors.New("x")))
}

// decode is a test helper for JSON answers.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m), s)
	return m
}
