package sandbox

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// isolating are the drivers the escape-and-limits suite runs against.
var isolating = []string{LinuxDriverName, GVisorDriverName}

// forEachDriver runs f as a parallel subtest for each isolating driver.
func forEachDriver(t *testing.T, f func(t *testing.T, name string)) {
	t.Helper()
	for _, name := range isolating {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, name)
		})
	}
}

// newTestDriver returns the named driver, skipping gvisor where runsc is missing.
func newTestDriver(t *testing.T, name string, cfg Config) Driver {
	t.Helper()
	if name == GVisorDriverName {
		if _, err := exec.LookPath("runsc"); err != nil {
			t.Skip("gvisor: runsc is not in PATH; install it (apt install runsc) to run these tests")
		}
	}
	d, err := NewDriver(name, cfg)
	require.NoError(t, err)
	return d
}

// sh is a driver config whose runtime is a shell script.
func sh(script string) Config { return Config{Command: []string{"/bin/sh", "-c", script}} }

// helperCmd is a driver config whose runtime is this test binary as a helper.
func helperCmd(t *testing.T, args ...string) Config {
	exe, err := os.Executable()
	require.NoError(t, err)
	return Config{Command: append([]string{exe, "sandbox-helper"}, args...)}
}

// start creates a sandbox that the test's cleanup destroys.
func start(t *testing.T, d Driver, spec Spec) Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := d.Create(ctx, spec)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sb.Destroy()) })
	return sb
}

// finish closes the runtime's stdin and returns all it wrote and how it
// ended. A runtime still running after a minute is destroyed, and the test fails.
func finish(t *testing.T, sb Sandbox) (stdout, stderr string, exit Exit) {
	t.Helper()
	sb.Stdin().Close()
	var out, errOut []byte
	var wg sync.WaitGroup
	wg.Go(func() { out, _ = io.ReadAll(sb.Stdout()) })
	wg.Go(func() { errOut, _ = io.ReadAll(sb.Stderr()) })
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		sb.Destroy()
		<-done
		t.Fatalf("sandbox still running after a minute; stdout %q stderr %q", out, errOut)
	}
	return string(out), string(errOut), sb.Wait()
}

// run runs a runtime to its end in a new sandbox.
func run(t *testing.T, name string, cfg Config, spec Spec) (stdout, stderr string, exit Exit) {
	t.Helper()
	return finish(t, start(t, newTestDriver(t, name, cfg), spec))
}

// cgroupOf gives the test access to a sandbox's cgroup.
func cgroupOf(t *testing.T, sb Sandbox) interface {
	cgroupDirs() []string
	cpuUsage() (time.Duration, error)
} {
	t.Helper()
	if p, ok := sb.(*pooled); ok {
		sb = p.Sandbox
	}
	cg, ok := sb.(interface {
		cgroupDirs() []string
		cpuUsage() (time.Duration, error)
	})
	require.True(t, ok, "%T has no cgroup", sb)
	return cg
}

// cgroupFile reads a file of the sandbox's cgroup, in whichever of its
// folders has it.
func cgroupFile(t *testing.T, sb Sandbox, name string) string {
	t.Helper()
	for _, d := range cgroupOf(t, sb).cgroupDirs() {
		if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s in the sandbox's cgroup", name)
	return ""
}

// cgroupPids lists the host pids in the sandbox's cgroup.
func cgroupPids(t *testing.T, sb Sandbox) []int {
	var pids []int
	for f := range strings.FieldsSeq(cgroupFile(t, sb, "cgroup.procs")) {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	return pids
}

// hostProcessesWith lists host processes whose command line contains s.
func hostProcessesWith(s string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			found = append(found, filepath.Base(d)+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// gone says whether a host process no longer exists (a zombie counts as gone).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}
