package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// binary is the oneshot binary the scenarios start.
var binary string

func TestMain(m *testing.M) { systemtest.MainWithBinaries(m, &binary) }

func driver() string {
	if d := os.Getenv("ONESHOT_TEST_SANDBOX_DRIVER"); d != "" {
		return d
	}
	return "linux"
}

func startCluster(t *testing.T, cfg ClusterConfig) *Cluster {
	t.Helper()
	cfg.Binary = binary
	cfg.Dir = t.TempDir()
	cfg.SandboxDriver = driver()
	cfg.Env = append(cfg.Env, "ONESHOT_SHUTDOWN_TIMEOUT=10s")
	c, err := StartCluster(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	return c
}

func report(t *testing.T, r *Report, err error) *Report {
	t.Helper()
	require.NoError(t, err)
	var b strings.Builder
	r.Print(&b)
	t.Log("\n" + b.String())
	return r
}

func TestSteadyLoadLosesNothing(t *testing.T) {
	c := startCluster(t, ClusterConfig{Workers: 2, WorkerConcurrency: 4})
	r, err := Steady(context.Background(), c, []int{1, 8}, 50)
	report(t, r, err)
	require.Equal(t, 100, r.Verdict.Accepted)
	require.Equal(t, 100, r.Verdict.Completed)
	require.Zero(t, r.Lost)
}

// A worker killed mid-run: Asynq's lease recovery runs its runs again; every
// accepted run ends, none stuck running.
func TestKillWorkerMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Asynq's lease recovery (30-90 s)")
	}
	c := startCluster(t, ClusterConfig{Workers: 2, WorkerConcurrency: 4})
	r, err := KillWorkers(context.Background(), c, 1, 2*time.Second)
	report(t, r, err)
	require.Positive(t, r.Verdict.Accepted)
	require.Zero(t, r.Lost, "every accepted run ends")
	require.Equal(t, r.Verdict.Accepted, r.Verdict.Completed+sum(r.Verdict.Failed), "none cancelled")
	require.Positive(t, r.Verdict.Retried, "the killed worker's runs ran again, and their records say so")
}

// SIGTERM: in-flight runs finish inside the shutdown timeout; none is lost.
func TestTermWorkerUnderLoad(t *testing.T) {
	c := startCluster(t, ClusterConfig{Workers: 2, WorkerConcurrency: 4})
	r, err := TermWorker(context.Background(), c, time.Second)
	report(t, r, err)
	require.Positive(t, r.Verdict.Accepted)
	require.Zero(t, r.Lost)
	require.Equal(t, r.Verdict.Accepted, r.Verdict.Completed, "runs shorter than the shutdown timeout complete")
}

// Redis killed and restarted under load: refusals are quick and clear, and
// every run accepted before or after ends.
func TestRedisRestartUnderLoad(t *testing.T) {
	c := startCluster(t, ClusterConfig{Workers: 1, WorkerConcurrency: 4})
	r, err := RestartRedis(context.Background(), c, 2*time.Second)
	report(t, r, err)
	require.Positive(t, r.Verdict.Accepted)
	require.Zero(t, r.Lost)
}

// A burst far above capacity is queued or refused; memory stays bounded;
// nothing crashes.
func TestBurstAboveCapacity(t *testing.T) {
	c := startCluster(t, ClusterConfig{Workers: 1, WorkerConcurrency: 2})
	r, err := Burst(context.Background(), c, 200, 400)
	report(t, r, err)
	require.Zero(t, r.Lost)
	require.Equal(t, r.Verdict.Accepted, r.Verdict.Completed)
}

// Sentinel failover: the system follows the new primary. What the old
// primary acknowledged but never replicated may be lost: the report says how
// much; the test asserts the system works again afterwards.
func TestSentinelFailover(t *testing.T) {
	c := startCluster(t, ClusterConfig{Workers: 1, WorkerConcurrency: 4, Sentinel: true})
	r, err := Failover(context.Background(), c)
	report(t, r, err)
	out := c.Drive(context.Background(), Load{Clients: 2, Requests: 10})
	require.Len(t, out.Accepted, 10, "executes work on the new primary: %v", out.Errors)
	v := c.Verify(context.Background(), out.Accepted, time.Minute)
	require.Equal(t, 10, v.Completed)
}
