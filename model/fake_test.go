package model

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeServer is a provider endpoint for tests: it answers the n-th request
// with the n-th reply (the last one repeats) and records every request.
type fakeServer struct {
	*httptest.Server
	mu      sync.Mutex
	got     []gotRequest
	replies []http.HandlerFunc
}

type gotRequest struct {
	Path   string
	Header http.Header
	Body   string
}

func newFakeServer(t *testing.T, replies ...http.HandlerFunc) *fakeServer {
	t.Helper()
	require.NotEmpty(t, replies)
	f := &fakeServer{replies: replies}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.got)
		f.got = append(f.got, gotRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)})
		f.mu.Unlock()
		f.replies[min(n, len(f.replies)-1)](w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) requests() []gotRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gotRequest(nil), f.got...)
}

// reply answers with status, body and header pairs.
func reply(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// replyStream answers 200 with an event stream, flushing after each event so
// the client sees them arrive one by one.
func replyStream(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		for ev := range strings.SplitAfterSeq(body, "\n\n") {
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	}
}

// replyDrop writes the start of an event stream, then closes the connection
// under it, as a failing network or proxy would. An empty start drops the
// connection before any byte of the answer.
func replyDrop(start string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if start != "" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, start)
			w.(http.Flusher).Flush()
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(fmt.Sprintf("hijack: %v", err))
		}
		conn.Close()
	}
}

// replyFixture answers 200 with a file of testdata: .sse as an event stream,
// else as JSON.
func replyFixture(t *testing.T, name string) http.HandlerFunc {
	body := fixture(t, name)
	if strings.HasSuffix(name, ".sse") {
		return replyStream(body)
	}
	return reply(http.StatusOK, body)
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// upTo returns the part of s before the first occurrence of marker, and the
// marker line with it: the start of a stream to cut.
func upTo(t *testing.T, s, marker string) string {
	t.Helper()
	i := strings.Index(s, marker)
	require.GreaterOrEqual(t, i, 0, "marker %q", marker)
	return s[:i+len(marker)]
}

// recorder keeps what a call reported through its hooks.
type recorder struct {
	deltas  []Delta
	retries []Retry
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		DeltaFunc: func(d Delta) { r.deltas = append(r.deltas, d) },
		RetryFunc: func(x Retry) { r.retries = append(r.retries, x) },
	}
}

// text is the streamed text, thinking the streamed thinking.
func (r *recorder) text() string     { return r.join(func(d Delta) string { return d.Text }) }
func (r *recorder) thinking() string { return r.join(func(d Delta) string { return d.Thinking }) }

func (r *recorder) join(f func(Delta) string) string {
	var b strings.Builder
	for _, d := range r.deltas {
		b.WriteString(f(d))
	}
	return b.String()
}

// partsText joins the parts of one type.
func partsText(parts []Part, typ string) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Type == typ {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
