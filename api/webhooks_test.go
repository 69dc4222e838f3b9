package api_test

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/webhook"
)

// delivery is one webhook request a receiver got.
type delivery struct {
	Path, Event, ID, Signature string
	Body                       []byte
}

// receiver is an HTTPS webhook receiver that records what it gets, and
// answers 500 to the first delivery of the event types in failFirst.
type receiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	got       []delivery
	failFirst map[string]bool
}

func newReceiver(t *testing.T, failFirst ...string) *receiver {
	rc := &receiver{failFirst: map[string]bool{}}
	for _, e := range failFirst {
		rc.failFirst[e] = true
	}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{Path: r.URL.Path, Event: r.Header.Get(webhook.EventHeader), ID: r.Header.Get(webhook.DeliveryHeader),
			Signature: r.Header.Get(webhook.SignatureHeader), Body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, d)
		fail := rc.failFirst[d.Event]
		delete(rc.failFirst, d.Event)
		rc.mu.Unlock()
		if fail {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// caFile writes the receiver's certificate where ONESHOT_WEBHOOK_CA_FILE can name it.
func (rc *receiver) caFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(path, pemBytes, 0o600))
	return path
}

// wait returns the deliveries to path once there are n.
func (rc *receiver) wait(t *testing.T, path string, n int) []delivery {
	t.Helper()
	var out []delivery
	require.Eventually(t, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		out = nil
		for _, d := range rc.got {
			if d.Path == path {
				out = append(out, d)
			}
		}
		return len(out) >= n
	}, 20*time.Second, 10*time.Millisecond, "%d deliveries to %s", n, path)
	require.Len(t, out, n)
	return out
}

type webhookBody struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	Data      struct {
		ID          string     `json:"id"`
		AgentID     string     `json:"agentId"`
		Status      string     `json:"status"`
		Error       *string    `json:"error"`
		Output      *string    `json:"output"`
		StartedAt   *time.Time `json:"startedAt"`
		CompletedAt *time.Time `json:"completedAt"`
	} `json:"data"`
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_test")
	rc := newReceiver(t, webhook.RunCompleted)
	c, _, _ := startDev(t, func(cfg *system.Config) {
		cfg.WebhookSecret = string(secret)
		cfg.WebhookAllowLoopback = true // the receiver listens on 127.0.0.1
		cfg.WebhookCAFile = rc.caFile(t)
		cfg.WebhookRetryDelay = 50 * time.Millisecond
	})
	decode := func(d delivery) webhookBody {
		t.Helper()
		require.NoError(t, webhook.Verify(secret, d.Signature, d.Body, time.Minute, time.Now()), "signature of %s", d.Event)
		var b webhookBody
		require.NoError(t, json.Unmarshal(d.Body, &b))
		require.Equal(t, d.Event, b.Type)
		require.Equal(t, d.ID, b.ID)
		return b
	}

	// Registered with the run: created, started, completed (retried after a 500).
	a := c.createAgent(map[string]any{"name": "echo", "instructions": "x", "model": "builtin/echo"})
	created := c.createRun(map[string]any{"agentId": a.ID, "prompt": "hooked", "callbackUrl": rc.srv.URL + "/a"})
	first := rc.wait(t, "/a", 1)
	b := decode(first[0])
	require.Equal(t, webhook.RunCreated, b.Type)
	require.Equal(t, created.ID, b.Data.ID)
	require.Equal(t, a.ID, b.Data.AgentID)
	require.Equal(t, "queued", b.Data.Status)

	c.exec(created.ID)
	require.Equal(t, "completed", c.waitStatus(created.ID).Status)
	all := rc.wait(t, "/a", 4)
	byType := map[string][]delivery{}
	for _, d := range all {
		byType[d.Event] = append(byType[d.Event], d)
	}
	require.Len(t, byType[webhook.RunStarted], 1)
	started := decode(byType[webhook.RunStarted][0])
	require.Equal(t, "running", started.Data.Status)
	require.NotNil(t, started.Data.StartedAt)

	completed := byType[webhook.RunCompleted]
	require.Len(t, completed, 2, "delivered again after the 500")
	require.Equal(t, completed[0].Body, completed[1].Body, "the retry sends the same event")
	require.Equal(t, completed[0].ID, completed[1].ID)
	done := decode(completed[1])
	decode(completed[0])
	require.Equal(t, "completed", done.Data.Status)
	require.NotNil(t, done.Data.Output)
	require.Equal(t, "hooked", *done.Data.Output)
	require.Nil(t, done.Data.Error)
	require.NotNil(t, done.Data.CompletedAt)

	// Registered later with watch: the cancel is told.
	other := c.createRun(map[string]any{"agentId": a.ID, "prompt": "to cancel"})
	var watched struct {
		OK          bool   `json:"ok"`
		CallbackURL string `json:"callbackUrl"`
	}
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/run/"+other.ID+"/watch", map[string]any{"callbackUrl": rc.srv.URL + "/b"}, &watched))
	require.True(t, watched.OK)
	require.Equal(t, rc.srv.URL+"/b", watched.CallbackURL)
	c.cancel(other.ID)
	cancelled := decode(rc.wait(t, "/b", 1)[0])
	require.Equal(t, webhook.RunCancelled, cancelled.Type)
	require.Equal(t, "cancelled", cancelled.Data.Status)
	require.Equal(t, other.ID, cancelled.Data.ID)

	// Watching a run that has ended tells its end at once.
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/run/"+created.ID+"/watch", map[string]any{"callbackUrl": rc.srv.URL + "/c"}, &watched))
	late := decode(rc.wait(t, "/c", 1)[0])
	require.Equal(t, webhook.RunCompleted, late.Type)
	require.Equal(t, created.ID, late.Data.ID)

	// Private addresses are refused even with loopback allowed.
	var body errorBody
	for _, u := range []string{"https://10.0.0.1/x", "https://[fc00::1]/x", "https://169.254.169.254/", "ftp://example.com/"} {
		require.Equal(t, http.StatusBadRequest, c.do("POST", "/agent/v1/run/"+other.ID+"/watch", map[string]any{"callbackUrl": u}, &body), u)
		require.Equal(t, "callbackUrl", body.Error.Param)
		require.Equal(t, "invalid_callback_url", body.Error.Code)
	}
	require.Equal(t, http.StatusBadRequest, c.do("POST", "/agent/v1/run/"+other.ID+"/watch", map[string]any{}, &body))
	require.Equal(t, "callbackUrl", body.Error.Param)
	require.Equal(t, "missing_field", body.Error.Code)
}

// Without ONESHOT_WEBHOOK_ALLOW_LOOPBACK, loopback and plain http are refused
// when registered.
func TestWatchRefusesLoopbackAndHTTP(t *testing.T) {
	t.Parallel()
	c, _, _ := startDev(t, nil)
	var resp executeResponse
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/execute", map[string]any{"prompt": "x", "model": "builtin/echo"}, &resp))
	for _, tt := range []struct{ url, contains string }{
		{"https://127.0.0.1:8443/hook", "ONESHOT_WEBHOOK_ALLOW_LOOPBACK"},
		{"https://localhost/hook", "loopback"},
		{"https://[::1]/hook", "loopback"},
		{"https://[::ffff:127.0.0.1]/hook", "loopback"},
		{"http://93.184.216.34/hook", "https"},
		{"https://user:pw@93.184.216.34/hook", "credentials"},
		{"not a url", "https"},
	} {
		var body errorBody
		require.Equal(t, http.StatusBadRequest, c.do("POST", "/agent/v1/run/"+resp.RunID+"/watch", map[string]any{"callbackUrl": tt.url}, &body), tt.url)
		require.Equal(t, "callbackUrl", body.Error.Param, tt.url)
		require.Contains(t, body.Error.Message, tt.contains, tt.url)
	}
	var ok struct {
		OK bool `json:"ok"`
	}
	require.Equal(t, http.StatusOK, c.do("POST", "/agent/v1/run/"+resp.RunID+"/watch", map[string]any{"callbackUrl": "https://93.184.216.34/hook"}, &ok))
	require.True(t, ok.OK)
}
