package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/api"
	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
	"github.com/oneshot-dev/oneshot/model"
	"github.com/oneshot-dev/oneshot/run"
)

// sseEvent is one event of a stream as a client reads it.
type sseEvent struct {
	ID    int64
	Event string
	Data  struct {
		Seq  int64           `json:"seq"`
		Type string          `json:"type"`
		Time time.Time       `json:"time"`
		Data json.RawMessage `json:"data"`
	}
}

// sseStream is an open event stream.
type sseStream struct {
	t        *testing.T
	resp     *http.Response
	sc       *bufio.Scanner
	cancel   context.CancelFunc
	Comments []string
}

// openEvents opens a run's event stream; lastID, if not empty, is sent as
// the Last-Event-ID header.
func (c *client) openEvents(t *testing.T, path, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sseStream{t: t, resp: resp, sc: bufio.NewScanner(resp.Body), cancel: cancel}
	t.Cleanup(s.Close)
	return s
}

// Next returns the next event, or false when the stream ended.
func (s *sseStream) Next() (sseEvent, bool) {
	var e sseEvent
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if seen {
				return e, true
			}
		case strings.HasPrefix(line, ":"):
			s.Comments = append(s.Comments, line)
		case strings.HasPrefix(line, "id: "):
			e.ID, _ = strconv.ParseInt(line[4:], 10, 64)
			seen = true
		case strings.HasPrefix(line, "event: "):
			e.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			require.NoError(s.t, json.Unmarshal([]byte(line[6:]), &e.Data), line)
		}
	}
	return e, false
}

// Rest reads events until the stream ends.
func (s *sseStream) Rest() []sseEvent {
	var out []sseEvent
	for {
		e, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

// NextComment reads lines up to the next comment, which it returns.
func (s *sseStream) NextComment() string {
	for s.sc.Scan() {
		if line := s.sc.Text(); strings.HasPrefix(line, ":") {
			return line
		}
	}
	s.t.Fatal("the stream ended")
	return ""
}

func (s *sseStream) Close() {
	s.cancel()
	s.resp.Body.Close()
}

// A stream resumed with Last-Event-ID mid-run gets every event exactly once,
// in order, up to run_end; then it closes.
func TestEventsResumeMidRun(t *testing.T) {
	t.Parallel()
	c, sys, _ := startDev(t, nil)
	a := c.createAgent(map[string]any{"name": "steps", "instructions": "x", "model": "builtin/script"})
	prompt := model.Script{Steps: []model.ScriptStep{
		{Tool: "bash", Input: []byte(`{"command":"echo one"}`)},
		{Tool: "bash", Input: []byte(`{"command":"sleep 0.5; echo two"}`)},
		{Tool: "bash", Input: []byte(`{"command":"echo three"}`)},
		{Text: "done: {{last}}"},
	}}.Prompt()
	created := c.createRun(map[string]any{"agentId": a.ID, "prompt": prompt})
	path := "/agent/v1/run/" + created.ID + "/events"

	// Opened before the run starts: the stream waits for its events.
	first := c.openEvents(t, path, "")
	c.exec(created.ID)
	var got []sseEvent
	for len(got) < 3 {
		e, ok := first.Next()
		require.True(t, ok, "the stream ended early")
		got = append(got, e)
	}
	first.Close()
	require.Eventually(t, func() bool { return sys.API.EventStreams() == 0 }, 5*time.Second, 5*time.Millisecond, "a client that goes away releases its stream")

	second := c.openEvents(t, path, strconv.FormatInt(got[len(got)-1].ID, 10))
	got = append(got, second.Rest()...)
	for i, e := range got {
		require.EqualValues(t, i+1, e.ID, "no gap, no duplicate: %+v", e)
		require.Equal(t, e.ID, e.Data.Seq)
		require.Equal(t, e.Event, e.Data.Type)
		require.False(t, e.Data.Time.IsZero())
	}
	last := got[len(got)-1]
	require.Equal(t, "run_end", last.Event)
	require.JSONEq(t, `{"status":"completed","error":""}`, string(last.Data.Data))
	types := map[string]int{}
	for _, e := range got {
		types[e.Event]++
	}
	require.Equal(t, 3, types["tool_execution_start"], "%v", types)
	require.Equal(t, 1, types["agent_end"], "%v", types)

	// A full replay of the ended run is the same, and closes at once.
	all := c.openEvents(t, path, "").Rest()
	require.Len(t, all, len(got))
	for i := range all {
		require.Equal(t, got[i].ID, all[i].ID)
		require.Equal(t, got[i].Event, all[i].Event)
	}
	// The query parameter works like the header; past the end, nothing.
	tail := c.openEvents(t, path+"?lastEventId="+strconv.FormatInt(last.ID-2, 10), "").Rest()
	require.Len(t, tail, 2)
	require.Equal(t, "run_end", tail[1].Event)
	require.Empty(t, c.openEvents(t, path, strconv.FormatInt(last.ID, 10)).Rest())

	var body errorBody
	for _, bad := range []string{"?lastEventId=abc", "?lastEventId=-1"} {
		require.Equal(t, http.StatusBadRequest, c.do("GET", path+bad, nil, &body))
		require.Equal(t, "lastEventId", body.Error.Param)
		require.Equal(t, "invalid_last_event_id", body.Error.Code)
	}
	require.Equal(t, http.StatusNotFound, c.do("GET", "/agent/v1/run/run_nothere/events", nil, &body))
}

// An idle stream sends heartbeats; a cancel ends it with run_end.
func TestEventsHeartbeatAndCancel(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	cfg := systemtest.Config(r.URL)
	cfg.EventsHeartbeat = 20 * time.Millisecond
	// No worker: the run stays queued, its stream idle.
	sys := systemtest.Start(t, cfg, system.Roles{API: true})
	c := newClient(t, sys.APIAddr)
	var resp executeResponse
	require.Equal(t, http.StatusAccepted, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "x", "model": "builtin/echo", "agentRuntime": true}, &resp))

	stream := c.openEvents(t, "/agent/v1/run/"+resp.RunID+"/events", "")
	require.Equal(t, ": ping", stream.NextComment())
	require.Equal(t, ": ping", stream.NextComment())
	require.Equal(t, 1, sys.API.EventStreams())
	c.cancel(resp.RunID)
	events := stream.Rest()
	require.Len(t, events, 1)
	require.Equal(t, "run_end", events[0].Event)
	require.JSONEq(t, `{"status":"cancelled","error":"the run was cancelled"}`, string(events[0].Data.Data))
	require.Eventually(t, func() bool { return sys.API.EventStreams() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// A stream outlives the HTTP server's read and write timeouts: it lifts them
// and bounds each write instead.
func TestEventsOutliveServerTimeouts(t *testing.T) {
	t.Parallel()
	r := systemtest.StartRedis(t)
	store := run.NewStore(run.StoreConfig{Redis: r.Client(t)})
	router, err := model.NewRouterFromConfig(model.Config{}, nil)
	require.NoError(t, err)
	srv, err := api.New(api.Config{Redis: r.Client(t), Store: store, Router: router, EventsHeartbeat: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, srv.Start(ctx))
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.ReadTimeout, hs.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	hs.Start()
	defer hs.Close()

	rec := &run.Record{ID: run.NewID("run"), AgentID: run.NewID("agent"), Mode: run.ModeLegacy, Status: run.StatusQueued,
		RuntimeState: run.RuntimePending, Spec: run.Spec{Prompt: "p", Model: "builtin/echo"}, CreatedAt: time.Now()}
	require.NoError(t, store.Create(ctx, rec))
	c := &client{t: t, base: hs.URL, http: http.DefaultClient}
	stream := c.openEvents(t, "/agent/v1/run/"+rec.ID+"/events", "")
	start := time.Now()
	for time.Since(start) < time.Second { // five times the server's timeouts
		require.Equal(t, ": ping", stream.NextComment())
	}
	_, err = store.Cancel(ctx, rec.ID)
	require.NoError(t, err)
	events := stream.Rest()
	require.Len(t, events, 1)
	require.Equal(t, "run_end", events[0].Event)
}
