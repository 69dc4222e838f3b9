package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// oneshot runs the binary to its end.
func oneshot(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// announcement reads what the process prints at start, up to the curl line
// of "Try:", and returns it with the API address.
func (p *process) announcement(t *testing.T) (text, addr string) {
	t.Helper()
	var b strings.Builder
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		line, err := p.stdout.ReadString('\n')
		b.WriteString(line)
		if m := addrLine.FindStringSubmatch(line); m != nil {
			addr = m[1]
		}
		if strings.Contains(line, "curl ") {
			go io.Copy(io.Discard, p.stdout)
			return b.String(), addr
		}
		if err != nil {
			t.Fatalf("oneshot exited before announcing itself: %v\nstderr:\n%s", err, p.stderr.String())
		}
	}
	t.Fatal("oneshot did not announce itself in time")
	return "", ""
}

func post(t *testing.T, addr, key, body string) int {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+addr+"/agent/v1/execute", strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestKeysCreateListRevoke(t *testing.T) {
	r := systemtest.StartRedis(t)
	env := []string{"ONESHOT_REDIS_URL=" + r.URL}
	const body = `{"prompt":"hi","model":"builtin/echo"}`

	_, stderr, err := oneshot(t, []string{"ONESHOT_REDIS_URL="}, "keys", "list")
	require.Error(t, err)
	require.Contains(t, stderr, "ONESHOT_REDIS_URL is required")
	_, stderr, err = oneshot(t, env, "keys", "create")
	require.Error(t, err)
	require.Contains(t, stderr, "--org NAME is required")

	// Without keys the API is open, and says so.
	devEnv := append(sandboxEnv(), append(env, "ONESHOT_AUTH_CACHE_TTL=200ms")...)
	open := start(t, devEnv, "dev")
	text, addr := open.announcement(t)
	require.Contains(t, text, "auth       open (no API keys)")
	require.Equal(t, http.StatusOK, post(t, addr, "", body))
	open.cmd.Process.Kill()
	<-open.done

	key, stderr, err := oneshot(t, env, "keys", "create", "--org", "acme")
	require.NoError(t, err, stderr)
	require.Regexp(t, `^osk_[a-z2-7]{32}\n$`, key)
	key = strings.TrimSpace(key)
	require.Contains(t, stderr, "shown only this once")
	list, _, err := oneshot(t, env, "keys", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^key_\S+\s+acme\s+`+regexp.QuoteMeta(key[:12])+`\s+\S+\s+-$`, list)
	require.NotContains(t, list, key, "the key itself is never shown again")

	p := start(t, devEnv, "dev")
	text, addr = p.announcement(t)
	require.Contains(t, text, "auth       1 key")
	require.Contains(t, text, "Bearer <key>")
	require.Equal(t, http.StatusUnauthorized, post(t, addr, "", body))
	require.Equal(t, http.StatusOK, post(t, addr, key, body))

	out, stderr, err := oneshot(t, env, "keys", "revoke", key[:12])
	require.NoError(t, err, stderr)
	require.Regexp(t, `^revoked key_\S+ \(`+regexp.QuoteMeta(key[:12])+`\) of organization acme`, out)
	list, _, err = oneshot(t, env, "keys", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^key_\S+\s+acme\s+\S+\s+\S+\s+\d{4}-\d\d-\d\dT\S+$`, list, "listed as revoked")
	require.Eventually(t, func() bool { return post(t, addr, key, body) == http.StatusUnauthorized },
		5*time.Second, 50*time.Millisecond, "the revoked key is refused after the cache window")

	_, stderr, err = oneshot(t, env, "keys", "revoke", "osk_nothing")
	require.Error(t, err)
	require.Contains(t, stderr, "API key not found")
}

func TestBadAPIKeysSayWhich(t *testing.T) {
	for _, keys := range []string{"nocolon", "acme:short", "a b:0123456789abcdef", "acme:0123456789abcdef,globex:0123456789abcdef"} {
		_, stderr, err := oneshot(t, []string{"ONESHOT_REDIS_URL=", "ONESHOT_API_KEYS=" + keys, "ONESHOT_HTTP_ADDR=127.0.0.1:0"}, "dev")
		require.Error(t, err, keys)
		require.Contains(t, stderr, "ONESHOT_API_KEYS: entry", keys)
	}
}
