package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkStart prints, in one run, create-to-first-command latency for each
// driver and for bubblewrap, and the latency of a warm pool's Acquire, all
// measured interleaved (b.N samples each; gVisor at most 20). The linux
// driver's init is oneshot-runtime, as installed by make build:
//
//	go test ./sandbox -run '^$' -bench Start -benchtime 200x -v
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	cfg := Config{Command: EchoCommand, Init: buildInit(b)}
	pool := NewPool(PoolConfig{Driver: NewLinuxDriver(cfg), Warm: 2})
	defer pool.Close()
	ways := []BenchWay{ColdWay(NewLinuxDriver(cfg), Spec{}), ColdWay(&ProcessDriver{Command: EchoCommand}, Spec{}), AcquireWay(pool, Spec{})}
	if bwrap, err := BwrapWay(); err == nil {
		ways = append(ways, bwrap)
	} else {
		b.Logf("no baseline: %v", err)
	}
	var gvisor []BenchWay
	if _, err := exec.LookPath("runsc"); err == nil {
		gvisor = append(gvisor, ColdWay(NewGVisorDriver(cfg), Spec{}))
	} else {
		b.Log("no gvisor: runsc is not installed")
	}

	b.ResetTimer()
	results, err := Bench(ctx, b.N, ways...)
	if err != nil {
		b.Fatal(err)
	}
	more, err := Bench(ctx, min(b.N, 20), gvisor...)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("load average before the run ended: %s", strings.Join(strings.Fields(string(load))[:3], " "))
	for _, r := range append(results, more...) {
		b.Log(r)
		name := strings.Fields(r.Name)[0]
		if strings.Contains(r.Name, "acquire") {
			name = "acquire"
		}
		b.ReportMetric(float64(r.P50)/float64(time.Millisecond), name+"-p50-ms")
		b.ReportMetric(float64(r.P99)/float64(time.Millisecond), name+"-p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkChurn prints how many sandboxes a second the linux driver creates,
// runs a first command in and destroys, from 1 and 4 creators at once, beside
// bubblewrap doing the same (b.N sandboxes each):
//
//	go test ./sandbox -run '^$' -bench Churn -benchtime 400x -v
func BenchmarkChurn(b *testing.B) {
	ways := []BenchWay{ColdWay(NewLinuxDriver(Config{Command: EchoCommand, Init: buildInit(b)}), Spec{})}
	if bwrap, err := BwrapWay(); err == nil {
		ways = append(ways, bwrap)
	} else {
		b.Logf("no baseline: %v", err)
	}
	for _, w := range ways {
		for _, creators := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/creators=%d", strings.Fields(w.Name)[0], creators), func(b *testing.B) {
				rate, err := Churn(context.Background(), w, creators, b.N)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(rate, "sandboxes/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// buildInit builds the init of a real install (make build): oneshot-runtime,
// not the test binary.
func buildInit(b *testing.B) string {
	init := filepath.Join(b.TempDir(), "oneshot-runtime")
	if out, err := exec.Command("go", "build", "-o", init, "github.com/oneshot-dev/oneshot/cmd/oneshot-runtime").CombinedOutput(); err != nil {
		b.Fatalf("build oneshot-runtime: %v\n%s", err, out)
	}
	return init
}
