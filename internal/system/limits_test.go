package system_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// startAPI starts an API-only system on a Redis of the test's own, as
// `oneshot api` serves it (internal/system's serve, its timeouts and limits).
func startAPI(t *testing.T) *system.System {
	t.Helper()
	r := systemtest.StartRedis(t)
	return systemtest.Start(t, systemtest.Config(r.URL), system.Roles{API: true})
}

// TestSlowLorisIsCutOff sends a request's headers one byte a second, never
// finishing them: the server's ReadHeaderTimeout (10 s) must close the
// connection, rather than hold it (and a goroutine) open for as long as the
// client likes.
func TestSlowLorisIsCutOff(t *testing.T) {
	t.Parallel()
	sys := startAPI(t)

	conn, err := net.Dial("tcp", sys.APIAddr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	start := time.Now()

	stop := make(chan struct{})
	defer close(stop)
	var sent atomic.Int64
	go func() {
		headers := "POST /agent/v1/execute HTTP/1.1\r\nHost: oneshot\r\nContent-Type: application/json\r\nX-Slow: " + strings.Repeat("x", 100)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; i < len(headers); i++ {
			if _, err := conn.Write([]byte{headers[i]}); err != nil {
				return // the server closed the connection
			}
			sent.Add(1)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// The server closes the connection, saying at most that the request was
	// bad (Go's server answers 400 to headers it could not finish reading).
	got, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	var netErr net.Error
	require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the server kept the connection open for %s", elapsed)
	if len(got) > 0 {
		require.Regexp(t, `^HTTP/1\.1 40[08] .*\r\n(?s:.*)Connection: close\r\n`, string(got))
	}
	t.Logf("connection closed after %s, %d header bytes sent", elapsed.Round(time.Millisecond), sent.Load())
	require.Greater(t, elapsed, 9*time.Second, "closed before ReadHeaderTimeout: something else cut it")
	require.Less(t, elapsed, 13*time.Second, "ReadHeaderTimeout is 10s")
}

// TestHugeBodyIsRefusedEarly sends a 100 MB body to execute, whose limit is
// ONESHOT_BODY_LIMIT (1M here): the server must answer 413 long before the
// client has sent it all, reading at most about the limit, and the answer
// must name the setting.
func TestHugeBodyIsRefusedEarly(t *testing.T) {
	t.Parallel()
	sys := startAPI(t)
	const size = 100 << 20

	tests := []struct {
		name    string
		chunked bool // no Content-Length: the server must count
	}{
		{name: "content-length"},
		{name: "chunked", chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", sys.APIAddr)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))

			framing := fmt.Sprintf("Content-Length: %d", size)
			if tt.chunked {
				framing = "Transfer-Encoding: chunked"
			}
			_, err = fmt.Fprintf(conn, "POST /agent/v1/execute HTTP/1.1\r\nHost: oneshot\r\nContent-Type: application/json\r\n%s\r\n\r\n", framing)
			require.NoError(t, err)

			var written atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				chunk := bytes.Repeat([]byte("a"), 64<<10)
				copy(chunk, `{"prompt":"`)
				for written.Load() < size {
					var err error
					if tt.chunked {
						_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
					} else {
						_, err = conn.Write(chunk)
					}
					if err != nil {
						return // the server answered and closed
					}
					written.Add(int64(len(chunk)))
				}
			}()

			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			atAnswer := written.Load()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			t.Logf("413 after %s, when the client had written %.1f MB of %d MB", time.Since(start).Round(time.Millisecond), float64(atAnswer)/(1<<20), size>>20)

			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", body)
			var e struct {
				Error struct {
					Message, Type, Code string
				}
			}
			require.NoError(t, json.Unmarshal(body, &e), "%s", body)
			require.Equal(t, "body_too_large", e.Error.Code)
			require.Equal(t, "invalid_request_error", e.Error.Type)
			require.Contains(t, e.Error.Message, "ONESHOT_BODY_LIMIT")
			// The limit plus what the kernel's socket buffers hold: nowhere
			// near the 100 MB.
			require.Less(t, atAnswer, int64(size/4), "the server read most of the body before answering")
			// And the server hangs up rather than read the rest: the
			// client's writes fail before the end.
			<-done
			require.Less(t, written.Load(), int64(size), "the server took the whole body")
		})
	}
}
