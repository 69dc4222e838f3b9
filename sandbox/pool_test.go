package sandbox

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func TestPoolWarm(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	d := NewLinuxDriver(sh(`read line; echo "got $line"`))
	p := NewPool(PoolConfig{Driver: d, Warm: 2, Registerer: reg})
	defer func() { require.NoError(t, p.Close()) }()

	require.NoError(t, p.waitWarm(ctx, Spec{}, 2))
	sb, err := p.Acquire(ctx, Spec{})
	require.NoError(t, err)
	// A warm sandbox's runtime is already running and waiting on stdin.
	io.WriteString(sb.Stdin(), "task\n")
	line, err := bufio.NewReader(sb.Stdout()).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "got task\n", line)
	require.NoError(t, sb.Destroy())

	// The pool refills; every acquire gets a sandbox no one had.
	require.NoError(t, p.waitWarm(ctx, Spec{}, 2))
	seen := map[string]bool{sb.ID(): true}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			sb, err := p.Acquire(ctx, Spec{})
			require.NoError(t, err)
			defer sb.Destroy()
			mu.Lock()
			defer mu.Unlock()
			require.False(t, seen[sb.ID()], "sandbox %s handed out twice", sb.ID())
			seen[sb.ID()] = true
		})
	}
	wg.Wait()

	// Another size is created cold.
	sb, err = p.Acquire(ctx, Spec{CPU: 1, MemoryMiB: 256})
	require.NoError(t, err)
	require.NoError(t, sb.Destroy())

	m := gather(t, reg)
	require.GreaterOrEqual(t, m["oneshot_sandbox_acquire_duration_seconds{driver=linux,result=hit}"], 3.0)
	require.GreaterOrEqual(t, m["oneshot_sandbox_acquire_duration_seconds{driver=linux,result=miss}"], 1.0)
	require.GreaterOrEqual(t, m["oneshot_sandbox_pool_misses_total{driver=linux}"], 1.0)
	require.GreaterOrEqual(t, m["oneshot_sandbox_create_duration_seconds{driver=linux}"], 8.0)
	require.GreaterOrEqual(t, m["oneshot_sandbox_destroy_duration_seconds{driver=linux}"], 7.0)
	require.Contains(t, m, "oneshot_sandbox_warm_sandboxes{class=2cpu-2048mib}")
}

func TestPoolCloseDestroysWarm(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPool(PoolConfig{Driver: NewLinuxDriver(sh(`read line`)), Warm: 3, Classes: []Spec{{CPU: 1, MemoryMiB: 128}}})
	require.NoError(t, p.waitWarm(ctx, Spec{CPU: 1, MemoryMiB: 128}, 3))
	var dirs []string
	p.mu.Lock()
	for _, c := range p.classes {
		for _, sb := range c.ready {
			dirs = append(dirs, cgroupOf(t, sb).cgroupDirs()...)
		}
	}
	p.mu.Unlock()
	require.NotEmpty(t, dirs)
	require.NoError(t, p.Close())
	for _, d := range dirs {
		require.NoDirExists(t, d)
	}
	_, err := p.Acquire(ctx, Spec{})
	require.ErrorIs(t, err, errPoolClosed)
	require.NoError(t, p.Close(), "a second Close")
}

func TestPoolSkipsDeadWarmSandboxes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPool(PoolConfig{Driver: NewLinuxDriver(sh(`read line; echo alive`)), Warm: 2})
	defer p.Close()
	require.NoError(t, p.waitWarm(ctx, Spec{}, 2))

	// The runtime of the oldest warm sandbox dies while it waits.
	p.mu.Lock()
	dead := p.classes[Spec{}.Class()].ready[0]
	p.mu.Unlock()
	dead.Stdin().Close()
	dead.Wait()

	sb, err := p.Acquire(ctx, Spec{})
	require.NoError(t, err)
	defer sb.Destroy()
	require.NotEqual(t, dead.ID(), sb.ID())
	io.WriteString(sb.Stdin(), "x\n")
	line, err := bufio.NewReader(sb.Stdout()).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "alive\n", line)
}

func TestPoolDeadline(t *testing.T) {
	t.Parallel()
	p := NewPool(PoolConfig{Driver: NewLinuxDriver(sh(`sleep 600`)), Warm: -1, Deadline: 200 * time.Millisecond})
	defer p.Close()
	sb, err := p.Acquire(context.Background(), Spec{})
	require.NoError(t, err)
	exit := sb.Wait() // returns because the pool destroys it at its deadline
	require.Equal(t, "killed by signal killed", exit.String())
	require.NoError(t, sb.Destroy())
}

func TestPoolCountsOOM(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p := NewPool(PoolConfig{Driver: NewLinuxDriver(helperCmd(t, "alloc", "4096")), Warm: -1, Registerer: reg})
	defer p.Close()
	sb, err := p.Acquire(context.Background(), Spec{MemoryMiB: 64})
	require.NoError(t, err)
	_, _, exit := finish(t, sb)
	require.True(t, exit.OOMKilled)
	require.NoError(t, sb.Destroy())
	require.Equal(t, 1.0, gather(t, reg)["oneshot_sandbox_oom_kills_total{driver=linux}"])
}

// fakeDriver creates sandboxes that do nothing, or fails when told to.
type fakeDriver struct {
	created atomic.Int32
	fail    atomic.Bool
}

func (d *fakeDriver) Name() string                    { return "fake" }
func (d *fakeDriver) Check(ctx context.Context) error { return nil }
func (d *fakeDriver) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	if d.fail.Load() {
		return nil, errors.New("no more")
	}
	d.created.Add(1)
	return &fakeSandbox{id: NewID(), done: make(chan struct{})}, nil
}

type fakeSandbox struct {
	id   string
	done chan struct{}
	once sync.Once
}

func (s *fakeSandbox) ID() string            { return s.id }
func (s *fakeSandbox) Stdin() io.WriteCloser { return nil }
func (s *fakeSandbox) Stdout() io.Reader     { return strings.NewReader("") }
func (s *fakeSandbox) Stderr() io.Reader     { return strings.NewReader("") }
func (s *fakeSandbox) Wait() Exit            { <-s.done; return Exit{Signal: "killed", Code: -1} }
func (s *fakeSandbox) Destroy() error        { s.once.Do(func() { close(s.done) }); return nil }

func TestPoolRefillsAfterFailures(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := &fakeDriver{}
	d.fail.Store(true)
	reg := prometheus.NewRegistry()
	p := NewPool(PoolConfig{Driver: d, Warm: 4, Registerer: reg})
	defer p.Close()
	require.Eventually(t, func() bool { return gather(t, reg)["oneshot_sandbox_create_failures_total{driver=fake}"] >= 1 },
		10*time.Second, time.Millisecond)
	_, err := p.Acquire(ctx, Spec{}) // a miss, and the driver fails
	require.ErrorContains(t, err, "acquire sandbox: no more")
	d.fail.Store(false)
	require.NoError(t, p.waitWarm(ctx, Spec{}, 4)) // after the backoff
	require.EqualValues(t, 4, d.created.Load())
}

// gather returns the registry's samples by name{labels}: a counter or gauge's
// value, a histogram's sample count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
