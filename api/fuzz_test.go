package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/api"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
	"github.com/oneshot-dev/oneshot/webhook"
)

// The fuzz targets send arbitrary bodies to every API route that decodes
// one, through the real Echo handler (in-process, no TCP), on a real Redis
// and no worker. Whatever the body, the answer must be a 2xx of the route,
// or a 4xx with the error shape, or a 503; never another 5xx, never a panic.
// Seeds are in testdata/fuzz/<FuzzName>/; `go test ./api/` runs them, and
// `make fuzz` fuzzes each target for a while.
//
// In bodies, the placeholder $AGENT stands for the id of a persistent agent
// that exists, so seeds can reach past the lookup.

// fuzzBodyLimit is small so that a seed can cross it cheaply.
const fuzzBodyLimit = 64 << 10

// fuzzAPI is an API server for fuzzing.
type fuzzAPI struct {
	handler http.Handler
	rdb     *redis.Client
	agentID string
	calls   int
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	f.Helper()
	r := systemtest.StartRedis(f)
	rdb := r.Client(f)
	router, err := model.NewRouterFromConfig(model.Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	srv, err := api.New(api.Config{
		Redis:  rdb,
		Store:  run.NewStore(run.StoreConfig{Redis: rdb, Retention: time.Hour}),
		Router: router,
		// A sync execute answers 202 with its run id at once: no worker runs it.
		SyncTimeout:  time.Millisecond,
		BodyLimit:    fmt.Sprint(fuzzBodyLimit/1024, "K"),
		DefaultModel: "builtin/echo",
		// No callback URL is ever looked up on the network, nor called: no
		// worker delivers webhooks here.
		WebhookGuard: webhook.Guard{Resolver: fuzzResolver{}},
		Logger:       slog.New(slog.DiscardHandler),
		Registry:     prometheus.NewRegistry(),
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		f.Fatal(err)
	}
	a := &fuzzAPI{handler: srv.Handler(), rdb: rdb}
	a.reset(f)
	return a
}

// next starts an input: every 2000, it empties Redis.
func (a *fuzzAPI) next(t testing.TB) {
	if a.calls++; a.calls%2000 == 0 {
		a.reset(t)
	}
}

// reset empties Redis now and then, so that a long fuzz run does not fill
// it, and (re)creates the agent that $AGENT names.
func (a *fuzzAPI) reset(t testing.TB) {
	if err := a.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	a.agentID = a.create(t, "/agent/v1/agents", `{"name":"fuzz","instructions":"You are a fuzz target.","model":"builtin/echo"}`)
}

// create POSTs a body that must be accepted and returns the new id.
func (a *fuzzAPI) create(t testing.TB, path, body string) string {
	code, b := a.do("POST", path, []byte(body))
	var out struct {
		ID string `json:"id"`
	}
	if code != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.ID == "" {
		t.Fatalf("POST %s %s: %d %s", path, body, code, b)
	}
	return out.ID
}

func (a *fuzzAPI) do(method, path string, body []byte) (int, []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// send sends a fuzzed body and checks the answer's general contract. It
// returns the status and body for the target's own checks.
func (a *fuzzAPI) send(t *testing.T, method, path string, body []byte) (int, []byte) {
	body = bytes.ReplaceAll(body, []byte("$AGENT"), []byte(a.agentID))
	code, resp := a.do(method, path, body)
	switch {
	case code >= 500 && code != http.StatusServiceUnavailable:
		t.Fatalf("%s %s answered %d: %s\nbody: %q", method, path, code, resp, body)
	case code >= 400:
		checkErrorShape(t, code, resp)
	case code >= 200 && code < 300:
		if !json.Valid(resp) {
			t.Fatalf("%s %s answered %d with invalid JSON: %q", method, path, code, resp)
		}
	default:
		t.Fatalf("%s %s answered %d", method, path, code)
	}
	return code, resp
}

// checkErrorShape checks {"error": {"message", "type", "code", "param"}}.
func checkErrorShape(t *testing.T, code int, resp []byte) {
	t.Helper()
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    string  `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(resp))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil {
		t.Fatalf("a %d without the error shape (%v): %s", code, err, resp)
	}
	if e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("a %d with an empty message, type or code: %s", code, resp)
	}
	if e.Error.Param != nil && *e.Error.Param == "" {
		t.Fatalf("a %d with an empty param (omit it instead): %s", code, resp)
	}
}

// wantStatus fails unless code is one of the 2xx a route answers or a 4xx
// or 503 (whose shape send checked).
func wantStatus(t *testing.T, code int, ok ...int) {
	t.Helper()
	if code >= 400 {
		return
	}
	for _, c := range ok {
		if code == c {
			return
		}
	}
	t.Fatalf("status %d, want one of %v or an error", code, ok)
}

// addOversized adds a body just over the body limit: a 413 naming the setting.
func addOversized(f *testing.F) {
	f.Add([]byte(`{"prompt":"` + strings.Repeat("a", fuzzBodyLimit) + `"}`))
}

func FuzzExecuteRequest(f *testing.F) {
	a := newFuzzAPI(f)
	addOversized(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a.next(t)
		code, resp := a.send(t, "POST", "/agent/v1/execute", body)
		wantStatus(t, code, http.StatusOK, http.StatusAccepted)
		if code == http.StatusRequestEntityTooLarge && !bytes.Contains(resp, []byte("ONESHOT_BODY_LIMIT")) {
			t.Fatalf("a 413 that does not name ONESHOT_BODY_LIMIT: %s", resp)
		}
		if code < 300 {
			var out struct {
				RunID  string `json:"runId"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(resp, &out); err != nil || !run.ValidID("run", out.RunID) || out.Status != "queued" {
				t.Fatalf("accepted, but not as a queued run (%v): %s", err, resp)
			}
		}
	})
}

func FuzzAgentRequest(f *testing.F) {
	a := newFuzzAPI(f)
	addOversized(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a.next(t)
		code, resp := a.send(t, "POST", "/agent/v1/agents", body)
		wantStatus(t, code, http.StatusCreated)
		if code == http.StatusCreated {
			var out struct {
				ID       string `json:"id"`
				Name     string `json:"name"`
				IsActive bool   `json:"isActive"`
			}
			if err := json.Unmarshal(resp, &out); err != nil || !run.ValidID("agent", out.ID) || strings.TrimSpace(out.Name) == "" || !out.IsActive {
				t.Fatalf("created, but not a valid agent (%v): %s", err, resp)
			}
			// What was created reads back the same.
			if code, got := a.do("GET", "/agent/v1/agents/"+out.ID, nil); code != http.StatusOK || !jsonEqual(got, resp) {
				t.Fatalf("GET the created agent: %d %s, created %s", code, got, resp)
			}
		}
	})
}

func FuzzAgentPatch(f *testing.F) {
	a := newFuzzAPI(f)
	addOversized(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a.next(t)
		// A fresh agent each time: a failure does not depend on earlier inputs.
		id := a.create(t, "/agent/v1/agents", `{"name":"patched","instructions":"You are patched.","description":"d","model":"builtin/echo","sandbox":{"cpu":1}}`)
		code, resp := a.send(t, "PATCH", "/agent/v1/agents/"+id, body)
		wantStatus(t, code, http.StatusOK)
		code2, got := a.do("GET", "/agent/v1/agents/"+id, nil)
		if code2 != http.StatusOK {
			t.Fatalf("GET the patched agent: %d %s", code2, got)
		}
		if code == http.StatusOK && !jsonEqual(got, resp) {
			t.Fatalf("the PATCH answered %s, the agent reads %s", resp, got)
		}
		var out struct {
			Name         string `json:"name"`
			Instructions string `json:"instructions"`
		}
		if err := json.Unmarshal(got, &out); err != nil || strings.TrimSpace(out.Name) == "" || strings.TrimSpace(out.Instructions) == "" {
			t.Fatalf("after the PATCH (%d), the agent has no name or instructions (%v): %s", code, err, got)
		}
	})
}

func FuzzRunRequest(f *testing.F) {
	a := newFuzzAPI(f)
	addOversized(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a.next(t)
		code, resp := a.send(t, "POST", "/agent/v1/run", body)
		wantStatus(t, code, http.StatusCreated)
		if code == http.StatusCreated {
			var out struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(resp, &out); err != nil || !run.ValidID("run", out.ID) || out.Status != "queued" {
				t.Fatalf("created, but not a queued run (%v): %s", err, resp)
			}
		}
	})
}

func FuzzWatchRequest(f *testing.F) {
	a := newFuzzAPI(f)
	addOversized(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a.next(t)
		// A fresh run each time: a run takes a bounded number of callbacks.
		id := a.create(t, "/agent/v1/run", `{"agentId":"`+a.agentID+`","prompt":"watched"}`)
		code, _ := a.send(t, "POST", "/agent/v1/run/"+id+"/watch", body)
		wantStatus(t, code, http.StatusOK)
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// fuzzResolver resolves *.example.com to a public address and
// *.internal.example.com to a private one; other names do not exist.
type fuzzResolver struct{}

func (fuzzResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	switch {
	case strings.HasSuffix(host, ".internal.example.com"):
		return []net.IPAddr{{IP: net.IPv4(10, 0, 0, 1)}}, nil
	case strings.HasSuffix(host, ".example.com") || host == "example.com":
		return []net.IPAddr{{IP: net.IPv4(93, 184, 216, 34)}}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
