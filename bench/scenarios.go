package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Report is a scenario's result: what it measured, in lines a person reads.
type Report struct {
	Scenario string
	Lines    []string
	Verdict  *Verdict
	// Lost is what the scenario must keep at zero.
	Lost int
}

func (r *Report) addf(format string, args ...any) {
	r.Lines = append(r.Lines, fmt.Sprintf(format, args...))
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "== %s\n", r.Scenario)
	for _, l := range r.Lines {
		fmt.Fprintf(w, "   %s\n", l)
	}
}

func (r *Report) verdict(v *Verdict) {
	r.Verdict = v
	r.Lost = v.Lost()
	r.addf("runs accepted %d: completed %d, failed %d %v, cancelled %d, retried (attempts > 1) %d, lost %d (missing %d, stuck %d)",
		v.Accepted, v.Completed, sum(v.Failed), v.Failed, v.Cancelled, v.Retried, v.Lost(), len(v.Missing), len(v.Stuck))
	r.addf("all runs terminal %s after the load ended", v.Settled.Round(time.Millisecond))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Steady measures throughput and latency of sync executes at each client
// count, beside a raw Asynq round trip on the cluster's Redis, plain and
// behind HTTP.
func Steady(ctx context.Context, c *Cluster, levels []int, perLevel int) (*Report, error) {
	r := &Report{Scenario: "steady load, sync builtin/echo"}
	var all []string
	for _, clients := range levels {
		raw, err := RawAsynq(ctx, c.RedisURL, clients, perLevel)
		if err != nil {
			return nil, err
		}
		rawHTTP, err := RawAsynqHTTP(ctx, c.RedisURL, clients, perLevel)
		if err != nil {
			return nil, err
		}
		out := c.Drive(ctx, Load{Clients: clients, Requests: perLevel})
		all = append(all, out.Accepted...)
		r.addf("clients %3d: execute %7.0f req/s p50 %6.2f ms p99 %7.2f ms | raw asynq %7.0f req/s p50 %6.2f ms p99 %7.2f ms | over http %7.0f req/s p50 %6.2f ms p99 %7.2f ms | answers %s",
			clients, out.Throughput(), ms(out.Percentile(50)), ms(out.Percentile(99)),
			raw.Throughput(), ms(raw.Percentile(50)), ms(raw.Percentile(99)),
			rawHTTP.Throughput(), ms(rawHTTP.Percentile(50)), ms(rawHTTP.Percentile(99)), statusLine(out.ByStatus))
	}
	r.verdict(c.Verify(ctx, all, time.Minute))
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// KillWorkers kills a worker with SIGKILL while runs are in flight, restarts
// it, and repeats; then checks every accepted run ended. Asynq gives a dead
// worker's tasks back after their lease (30 s) and its recoverer's next pass
// (up to 1 min): that is the recovery time to expect.
func KillWorkers(ctx context.Context, c *Cluster, kills int, runTime time.Duration) (*Report, error) {
	r := &Report{Scenario: fmt.Sprintf("kill -9 of a worker mid-run, %d times", kills)}
	loadCtx, stop := context.WithCancel(ctx)
	done := make(chan *Outcome, 1)
	go func() {
		done <- c.Drive(loadCtx, Load{Clients: 8, Legacy: true, Body: SleepBody(runTime), Requests: c.Capacity() * (kills + 2)})
	}()
	var killedAt time.Time
	for k := range kills {
		time.Sleep(runTime / 2)
		i := k % c.Workers()
		killedAt = time.Now()
		if err := c.SignalWorker(i, syscall.SIGKILL); err != nil {
			stop()
			return nil, err
		}
		r.addf("kill %d: worker-%d killed at %s", k+1, i, killedAt.Format("15:04:05.000"))
		if err := c.RestartWorker(ctx, i); err != nil {
			stop()
			return nil, err
		}
	}
	out := <-done
	stop()
	r.addf("load: %d requests, %s", out.Sent, statusLine(out.ByStatus))
	v := c.Verify(ctx, out.Accepted, 4*time.Minute)
	r.verdict(v)
	r.addf("recovery: the last run ended %s after the last kill", (time.Since(killedAt) - 0).Round(time.Second))
	return r, c.Alive()
}

// TermWorker sends SIGTERM to a worker under load: runs shorter than the
// shutdown timeout finish, longer ones are handed back; none is lost.
func TermWorker(ctx context.Context, c *Cluster, runTime time.Duration) (*Report, error) {
	r := &Report{Scenario: "SIGTERM to a worker under load"}
	loadCtx, stop := context.WithCancel(ctx)
	done := make(chan *Outcome, 1)
	go func() {
		done <- c.Drive(loadCtx, Load{Clients: 8, Legacy: true, Body: SleepBody(runTime), Requests: c.Capacity() * 3})
	}()
	time.Sleep(runTime / 2)
	t0 := time.Now()
	if err := c.SignalWorker(0, syscall.SIGTERM); err != nil {
		stop()
		return nil, err
	}
	r.addf("worker-0 stopped %s after SIGTERM", time.Since(t0).Round(time.Millisecond))
	if err := c.RestartWorker(ctx, 0); err != nil {
		stop()
		return nil, err
	}
	out := <-done
	stop()
	r.addf("load: %d requests, %s", out.Sent, statusLine(out.ByStatus))
	r.verdict(c.Verify(ctx, out.Accepted, 4*time.Minute))
	return r, c.Alive()
}

// RestartRedis kills Redis under load and starts it again (persistence on):
// while it is down the API answers 503 within its timeout; afterwards every
// accepted run ends.
func RestartRedis(ctx context.Context, c *Cluster, down time.Duration) (*Report, error) {
	r := &Report{Scenario: fmt.Sprintf("Redis killed under load, back after %s", down)}
	loadCtx, stop := context.WithCancel(ctx)
	done := make(chan *Outcome, 1)
	go func() {
		done <- c.Drive(loadCtx, Load{Clients: 16, Body: EchoBody, Duration: 3*down + 3*time.Second, Timeout: 70 * time.Second})
	}()
	time.Sleep(time.Second)
	c.KillRedis()
	r.addf("redis killed")
	time.Sleep(down)
	if err := c.StartRedisAgain(ctx); err != nil {
		stop()
		return nil, err
	}
	r.addf("redis back")
	out := <-done
	stop()
	r.addf("load: %d requests, %s; longest wait of a request not accepted: %s", out.Sent, statusLine(out.ByStatus), out.MaxRefusedLatency.Round(time.Millisecond))
	if len(out.Errors) > 0 {
		r.addf("a refusal: %.200s", out.Errors[0])
	}
	r.verdict(c.Verify(ctx, out.Accepted, 4*time.Minute))
	return r, c.Alive()
}

// Failover kills the Sentinel primary under load; the system follows the new
// primary. The loss window is the time requests fail, and the runs lost are
// those the old primary acknowledged but never replicated.
func Failover(ctx context.Context, c *Cluster) (*Report, error) {
	r := &Report{Scenario: "Redis Sentinel failover under load"}
	before, err := c.PrimaryAddr(ctx)
	if err != nil {
		return nil, err
	}
	loadCtx, stop := context.WithCancel(ctx)
	done := make(chan *Outcome, 1)
	go func() {
		done <- c.Drive(loadCtx, Load{Clients: 8, Body: EchoBody, Duration: 15 * time.Second, Timeout: 30 * time.Second})
	}()
	time.Sleep(2 * time.Second)
	killed := time.Now()
	c.KillRedis()
	var after string
	for time.Since(killed) < 30*time.Second {
		if a, err := c.PrimaryAddr(ctx); err == nil && a != before {
			after = a
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.addf("primary %s killed; sentinels promoted %s after %s", before, after, time.Since(killed).Round(time.Millisecond))
	out := <-done
	stop()
	r.addf("load: %d requests, %s", out.Sent, statusLine(out.ByStatus))
	r.verdict(c.Verify(ctx, out.Accepted, 2*time.Minute))
	return r, c.Alive()
}

// Burst sends far more concurrent requests than the workers can run: they are
// queued or refused, the API's memory stays bounded, nothing crashes, and
// every accepted run ends.
func Burst(ctx context.Context, c *Cluster, clients, requests int) (*Report, error) {
	r := &Report{Scenario: fmt.Sprintf("burst: %d concurrent clients, %d requests", clients, requests)}
	rssBefore := rssMiB(c.APIPid())
	stopWatch := make(chan struct{})
	peakc := make(chan float64, 1)
	go func() {
		peak := rssBefore
		for {
			select {
			case <-stopWatch:
				peakc <- peak
				return
			case <-time.After(100 * time.Millisecond):
				peak = max(peak, rssMiB(c.APIPid()))
			}
		}
	}()
	out := c.Drive(ctx, Load{Clients: clients, Requests: requests, Body: SleepBody(200 * time.Millisecond), Timeout: 3 * time.Minute})
	close(stopWatch)
	peak := <-peakc
	r.addf("load: %d requests in %s, %s", out.Sent, out.Elapsed.Round(time.Millisecond), statusLine(out.ByStatus))
	r.addf("API memory: %.0f MiB before, %.0f MiB peak", rssBefore, peak)
	r.verdict(c.Verify(ctx, out.Accepted, 4*time.Minute))
	return r, c.Alive()
}

// rssMiB reads a process's resident memory.
func rssMiB(pid int) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
