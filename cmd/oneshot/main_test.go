package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// binary is the oneshot binary built for these tests.
var binary string

func TestMain(m *testing.M) { systemtest.MainWithBinaries(m, &binary) }

// process is a oneshot process started by a test.
type process struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr bytes.Buffer
	banner string        // what it announced at start (apiAddr reads it)
	done   chan struct{} // closed when the process has exited
	err    error         // its exit error, once done is closed
}

func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{cmd: cmd, done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p.stdout = bufio.NewReader(out)
	cmd.Stderr = &p.stderr
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

var addrLine = regexp.MustCompile(`API\s+http://([0-9.:]+)/agent/v1/execute`)

// apiAddr reads the announced API address from the process's output, and
// keeps the whole announcement in p.banner.
func (p *process) apiAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	addr := ""
	for time.Now().Before(deadline) {
		line, err := p.stdout.ReadString('\n')
		p.banner += line
		if m := addrLine.FindStringSubmatch(line); m != nil {
			addr = m[1]
		}
		if addr != "" && strings.HasPrefix(line, "Try:") {
			go io.Copy(io.Discard, p.stdout)
			return addr
		}
		if err != nil {
			t.Fatalf("oneshot exited before announcing its API: %v\nstderr:\n%s", err, p.stderr.String())
		}
	}
	t.Fatal("oneshot did not announce its API in time")
	return ""
}

func execute(t *testing.T, addr, body string) map[string]any {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/agent/v1/execute", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", out)
	return out
}

func sandboxEnv() []string {
	return []string{"ONESHOT_SANDBOX_DRIVER=" + systemtest.Driver(), "ONESHOT_HTTP_ADDR=127.0.0.1:0", "ONESHOT_WORKER_ADDR=127.0.0.1:0"}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	require.NoError(t, err)
	require.Regexp(t, `^oneshot \S+\n$`, string(out))
}

func TestUnknownCommandFails(t *testing.T) {
	out, err := exec.Command(binary, "frobnicate").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `unknown command "frobnicate"`)
	require.Contains(t, string(out), "usage: oneshot")
}

func TestProductionRolesNeedARedisURL(t *testing.T) {
	for _, role := range []string{"api", "worker"} {
		cmd := exec.Command(binary, role)
		cmd.Env = append(os.Environ(), "ONESHOT_REDIS_URL=", "ONESHOT_HTTP_ADDR=127.0.0.1:0")
		out, err := cmd.CombinedOutput()
		require.Error(t, err, role)
		require.Contains(t, string(out), "ONESHOT_REDIS_URL is required", role)
	}
}

func TestBadSettingsSayWhich(t *testing.T) {
	cmd := exec.Command(binary, "dev")
	cmd.Env = append(os.Environ(), "ONESHOT_WORKER_CONCURRENCY=many")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "WORKER_CONCURRENCY")
}

// `oneshot dev` with no Redis URL is what `make run` starts: it must work with
// nothing installed, on its embedded Redis.
func TestDevRunsOnEmbeddedRedis(t *testing.T) {
	p := start(t, append(sandboxEnv(), "ONESHOT_REDIS_URL="), "dev")
	addr := p.apiAddr(t)
	// Installed beside oneshot (as make build does), oneshot-runtime is what
	// the sandboxes run.
	require.Contains(t, p.banner, "runtime "+filepath.Join(filepath.Dir(binary), "oneshot-runtime")+"\n")

	out := execute(t, addr, `{"prompt":"hello from dev","model":"builtin/echo"}`)
	require.Equal(t, "completed", out["status"])
	require.Equal(t, "hello from dev", out["output"])

	// SIGTERM: a clean, ordered shutdown.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		require.NoError(t, p.err, "stderr:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop after SIGTERM")
	}
	require.Contains(t, p.stderr.String(), "shutting down")
}

// The production shape: an API process and two worker processes on one Redis.
func TestAPIAndWorkerProcesses(t *testing.T) {
	r := systemtest.StartRedis(t)
	env := append(sandboxEnv(), "ONESHOT_REDIS_URL="+r.URL)
	api := start(t, env, "api")
	for range 2 {
		start(t, append(env, "ONESHOT_WORKER_CONCURRENCY=2"), "worker")
	}
	addr := api.apiAddr(t)
	for i := range 4 {
		out := execute(t, addr, `{"prompt":"run `+string(rune('a'+i))+`","model":"builtin/echo"}`)
		require.Equal(t, "completed", out["status"], "%v", out)
		require.Equal(t, "run "+string(rune('a'+i)), out["output"])
	}
}
