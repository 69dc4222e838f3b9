package sandbox

import (
	"bufio"
	"cmp"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The escape-and-limits suite: real commands in real sandboxes, for each
// isolating driver.

func TestStdio(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		sb := start(t, newTestDriver(t, name, sh(`read line; echo "got $line"; echo diag >&2; exit 3`)), Spec{})
		_, err := sb.Stdin().Write([]byte("hello\n"))
		require.NoError(t, err)
		out, errOut, exit := finish(t, sb)
		require.Equal(t, "got hello\n", out)
		require.Equal(t, "diag\n", errOut)
		require.Equal(t, Exit{Code: 3, MemoryMiB: DefaultMemoryMiB}, exit)
	})
}

func TestNoNetwork(t *testing.T) {
	const redis = "127.0.0.1:6379"
	if c, err := net.DialTimeout("tcp", redis, time.Second); err == nil {
		c.Close() // the host reaches it: the sandbox must not
	} else {
		t.Logf("the host cannot reach %s either (%v): the check below proves less", redis, err)
	}
	forEachDriver(t, func(t *testing.T, name string) {
		out, _, exit := run(t, name, helperCmd(t, "dial", redis), Spec{})
		require.Zero(t, exit.Code)
		require.Contains(t, out, "dial error", "the sandbox reached the host's Redis")

		out, _, _ = run(t, name, helperCmd(t, "loopback"), Spec{})
		require.Equal(t, "loopback ok\n", out, "loopback should work inside")

		out, _, _ = run(t, name, sh(`cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '`), Spec{})
		require.Equal(t, "lo", strings.TrimSpace(out), "interfaces other than lo")
	})
}

func TestHostFilesInvisible(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		out, _, _ := run(t, name, sh(`
			for p in /root /home /work /etc/shadow /etc/gshadow /var /opt /mnt /run /boot /srv /lost+found /.dockerenv; do
				[ -e "$p" ] && echo "visible: $p"
			done
			cat /etc/shadow >/dev/null 2>&1 && echo "read /etc/shadow"
			cut -d: -f1 /etc/passwd | tr '\n' ' '
			echo`), Spec{})
		require.Equal(t, "root nobody \n", out)
	})
	t.Run("linux/no-sys", func(t *testing.T) {
		t.Parallel()
		out, _, _ := run(t, LinuxDriverName, sh(`ls /sys 2>&1 | head -1`), Spec{})
		require.Contains(t, out, "No such file")
	})
}

func TestWritesConfined(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		out, _, _ := run(t, name, sh(`
			for p in /x /usr/x /usr/bin/x /etc/x /etc/passwd /bin/x /lib/x /dev/x /proc/x /oneshot/x; do
				(echo > "$p") 2>/dev/null && echo "wrote: $p"
			done
			echo hi > /workspace/x && cat /workspace/x
			echo hi > /tmp/x && cat /tmp/x
			mkdir -p /workspace/a/b && touch /workspace/a/b/c && echo nested`), Spec{})
		require.Equal(t, "hi\nhi\nnested\n", out)
	})
	t.Run("linux/workspace-bounded", func(t *testing.T) {
		t.Parallel()
		cfg := sh(`head -c 3145728 /dev/zero > /workspace/big 2>&1 || echo full; head -c 3145728 /dev/zero > /tmp/big 2>&1 || echo full`)
		cfg.WorkspaceMiB, cfg.TmpMiB = 2, 2
		out, _, _ := run(t, LinuxDriverName, cfg, Spec{})
		require.Equal(t, "full\nfull\n", out)
	})
}

func TestRuntimeBinaryReadOnly(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		out, _, exit := run(t, name, helperCmd(t, "write-self"), Spec{})
		require.Zero(t, exit.Code)
		require.Regexp(t, `^write-self: (EROFS|EACCES|ETXTBSY)\n$`, out)
	})
}

func TestIdentity(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		out, _, _ := run(t, name, sh(`id -u; id -g; id -G; hostname; pwd; echo $HOME $ONESHOT_WORKSPACE
			grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -s '\t' ' '`), Spec{})
		want := "65534\n65534\n65534\nsandbox\n/workspace\n/workspace /workspace\n"
		require.True(t, strings.HasPrefix(out, want), out)
		for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if strings.Contains(out, c) {
				require.Contains(t, out, c+": 0000000000000000")
			}
		}
		if name == LinuxDriverName {
			require.Contains(t, out, "CapBnd: 0000000000000000")
			require.Contains(t, out, "NoNewPrivs: 1")
		}
	})
}

func TestSeccomp(t *testing.T) {
	t.Parallel()
	out, _, exit := run(t, LinuxDriverName, helperCmd(t, "syscalls"), Spec{})
	require.Zero(t, exit.Code)
	require.Equal(t, "unshare=EPERM ptrace=EPERM keyctl=EPERM clone3=ENOSYS mount=EPERM sethostname=EPERM\n", out)
	out, _, _ = run(t, LinuxDriverName, sh(`grep Seccomp: /proc/self/status | tr -d '\t'; unshare -U true 2>&1 | head -1`), Spec{})
	require.Contains(t, out, "Seccomp:2\n")
	require.Contains(t, out, "Operation not permitted")
}

func TestEnvironmentHidden(t *testing.T) {
	require.Equal(t, secretValue, os.Getenv(secretEnv), "TestMain sets the worker's secret")
	forEachDriver(t, func(t *testing.T, name string) {
		cfg := sh(`env; echo; tr '\0' '\n' < /proc/1/environ`)
		cfg.Env = []string{"EXTRA=1"}
		out, _, _ := run(t, name, cfg, Spec{})
		require.NotContains(t, out, secretValue)
		require.NotContains(t, out, secretEnv)
		require.Contains(t, out, "ONESHOT_WORKSPACE=/workspace\n")
		require.Contains(t, out, "EXTRA=1\n")
	})
}

func TestOtherSandboxesInvisible(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		d := newTestDriver(t, name, sh(`sleep 4242 & echo started; wait`))
		other := start(t, d, Spec{})
		line, err := bufio.NewReader(other.Stdout()).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "started\n", line)

		out, _, _ := run(t, name, sh(`for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; echo; done`), Spec{})
		require.NotContains(t, out, "4242", "a process of another sandbox is visible")
		require.NotContains(t, out, "sandbox.test", "a host process is visible")
		require.LessOrEqual(t, strings.Count(out, "\n"), 4, out)
	})
}

func TestForkBombContained(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		cfg := sh(`echo started; f() { f | f & }; f; wait`)
		cfg.PidsMax = 32
		sb := start(t, newTestDriver(t, name, cfg), Spec{})
		line, err := bufio.NewReader(sb.Stdout()).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "started\n", line)
		max, err := strconv.Atoi(cgroupFile(t, sb, "pids.max"))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			current, err := strconv.Atoi(cgroupFile(t, sb, "pids.current"))
			require.NoError(t, err)
			require.LessOrEqual(t, current, max)
			limited := !strings.HasSuffix(cgroupFile(t, sb, "pids.events"), " 0")
			return limited || exited(sb)
		}, 30*time.Second, 10*time.Millisecond, "the bomb never reached pids.max")
		t.Logf("%s: pids.max %d, pids.events %q, runtime exited: %v", name, max, cgroupFile(t, sb, "pids.events"), exited(sb))
		dirs := cgroupOf(t, sb).cgroupDirs()
		pids := cgroupPids(t, sb)
		require.NoError(t, sb.Destroy())
		for _, pid := range pids {
			require.True(t, gone(pid), "pid %d survived", pid)
		}
		for _, d := range dirs {
			require.NoDirExists(t, d)
		}
	})
}

func TestMemoryLimit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		spec := Spec{MemoryMiB: 64}
		if name == GVisorDriverName {
			spec.MemoryMiB = 192 // gVisor's own memory counts too
		}
		out, _, exit := run(t, name, helperCmd(t, "alloc", "4096"), spec)
		require.NotContains(t, out, "allocated")
		require.True(t, exit.OOMKilled, "exit %+v", exit)
		require.Equal(t, spec.MemoryMiB, exit.MemoryMiB)
		require.Contains(t, exit.String(), "out of memory")
		require.Contains(t, exit.String(), strconv.Itoa(spec.MemoryMiB)+" MiB")
	})
	t.Run("linux/child-oom-kills-sandbox", func(t *testing.T) {
		t.Parallel()
		// The runtime stays small; a child of it (a tool) allocates. The whole
		// sandbox dies, not just the child: the runtime never says it survived.
		exe, err := os.Executable()
		require.NoError(t, err)
		cfg := helperCmd(t, "sh", "/oneshot/"+filepath.Base(exe)+" sandbox-helper alloc 4096")
		out, _, exit := run(t, LinuxDriverName, cfg, Spec{MemoryMiB: 64})
		require.NotContains(t, out, "survived")
		require.True(t, exit.OOMKilled)
	})
	t.Run("linux/v1-kernel-oom-killer-off", func(t *testing.T) {
		t.Parallel()
		// On cgroup v1 the worker kills the whole sandbox: the kernel must
		// not kill one process first, which the runtime could see.
		sb := start(t, newTestDriver(t, LinuxDriverName, sh("sleep 60")), Spec{MemoryMiB: 64})
		v1 := slices.ContainsFunc(cgroupOf(t, sb).cgroupDirs(), func(d string) bool {
			_, err := os.Stat(filepath.Join(d, "memory.oom_control"))
			return err == nil
		})
		if !v1 {
			t.Skip("not a cgroup v1 host")
		}
		require.Contains(t, cgroupFile(t, sb, "memory.oom_control"), "oom_kill_disable 1")
	})
	t.Run("linux/memory-limit-hit-is-known-before-destroy", func(t *testing.T) {
		t.Parallel()
		// What the worker asks when a runtime answers: was a process killed
		// for memory meanwhile?
		d := newTestDriver(t, LinuxDriverName, helperCmd(t, "alloc", "4096"))
		bomb := start(t, d, Spec{MemoryMiB: 64})
		fine := start(t, newTestDriver(t, LinuxDriverName, helperCmd(t, "alloc", "1")), Spec{MemoryMiB: 64})
		_, _, exit := finish(t, fine)
		require.Zero(t, exit.Code)
		require.False(t, MemoryLimitHit(fine))
		bomb.Stdin().Close()
		bomb.Wait()
		require.True(t, MemoryLimitHit(bomb))
	})
}

func TestCPUQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		sb := start(t, newTestDriver(t, name, sh(`echo started; while :; do :; done`)), Spec{CPU: 0.5})
		line, err := bufio.NewReader(sb.Stdout()).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "started\n", line)
		cg := cgroupOf(t, sb)
		used0, err := cg.cpuUsage()
		require.NoError(t, err)
		t0 := time.Now()
		<-time.After(1500 * time.Millisecond) // the measured interval, not a wait for an event
		used1, err := cg.cpuUsage()
		require.NoError(t, err)
		ratio := float64(used1-used0) / float64(time.Since(t0))
		t.Logf("%s: %.2f CPU seconds per second with a quota of 0.5", name, ratio)
		require.Less(t, ratio, 0.8)
		require.Greater(t, ratio, 0.1)
	})
}

func TestDestroyKillsEverything(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		marker := strconv.Itoa(40000 + int(time.Now().UnixNano()%10000))
		if name == GVisorDriverName {
			marker = "1" + marker // the subtests run at once
		}
		d := newTestDriver(t, name, sh(`sleep `+marker+` & (sleep `+marker+` &); sh -c "sleep `+marker+`" & echo started; wait`))
		ctx := context.Background()
		sb, err := d.Create(ctx, Spec{})
		require.NoError(t, err)
		line, err := bufio.NewReader(sb.Stdout()).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "started\n", line)

		pids := cgroupPids(t, sb)
		require.NotEmpty(t, pids)
		dirs := cgroupOf(t, sb).cgroupDirs()
		if name == LinuxDriverName {
			require.GreaterOrEqual(t, len(hostProcessesWith("sleep "+marker)), 3)
		}
		waited := make(chan Exit)
		go func() { waited <- sb.Wait() }()

		start := time.Now()
		require.NoError(t, sb.Destroy())
		t.Logf("%s: destroy took %s", name, time.Since(start))
		require.NoError(t, sb.Destroy(), "a second Destroy")
		exit := <-waited
		require.Equal(t, -1, exit.Code)
		require.NotEmpty(t, exit.Signal)

		for _, pid := range pids {
			require.True(t, gone(pid), "pid %d survived", pid)
		}
		require.Empty(t, hostProcessesWith("sleep "+marker))
		for _, d := range dirs {
			require.NoDirExists(t, d)
		}
		requireNothingLeft(t, sb.ID())
	})
}

// requireNothingLeft checks the host for traces of a destroyed sandbox.
func requireNothingLeft(t *testing.T, id string) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), id)
	require.NotContains(t, string(mounts), "oneshot-gvisor")
	for _, dir := range []string{os.TempDir(), Config{}.withDefaults().RunscRoot} {
		matches, err := filepath.Glob(filepath.Join(dir, "*"+id+"*"))
		require.NoError(t, err)
		require.Empty(t, matches)
	}
	cgroups, err := filepath.Glob("/sys/fs/cgroup/*/oneshot/" + id)
	require.NoError(t, err)
	require.Empty(t, cgroups)
	cgroups, err = filepath.Glob("/sys/fs/cgroup/oneshot/" + id)
	require.NoError(t, err)
	require.Empty(t, cgroups)
}

func TestNothingLeftAfterARun(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		before, err := os.ReadFile("/proc/self/mountinfo")
		require.NoError(t, err)
		sb, err := newTestDriver(t, name, sh(`echo data > /workspace/f; echo done`)).Create(context.Background(), Spec{})
		require.NoError(t, err)
		out, _, exit := finish(t, sb)
		require.Equal(t, "done\n", out)
		require.Zero(t, exit.Code)
		require.NoError(t, sb.Destroy())
		requireNothingLeft(t, sb.ID())
		after, err := os.ReadFile("/proc/self/mountinfo")
		require.NoError(t, err)
		require.Equal(t, strings.Count(string(before), "\n"), strings.Count(string(after), "\n"), "host mounts changed")
	})
}

func TestRuntimeExitsAtOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		_, _, exit := run(t, name, sh(`exit 7`), Spec{})
		require.Equal(t, 7, exit.Code)
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	require.NoError(t, NewLinuxDriver(sh("true")).Check(ctx))

	err := NewLinuxDriver(Config{Command: []string{"/nonexistent/oneshot", "agent"}}).Check(ctx)
	require.ErrorContains(t, err, "sandbox command")

	err = NewGVisorDriver(Config{Command: []string{"/bin/true"}, Runsc: "/nonexistent/runsc"}).Check(ctx)
	require.ErrorContains(t, err, "runsc not found")
	require.ErrorContains(t, err, "install gVisor")

	_, err = NewDriver("firecracker", sh("true"))
	require.ErrorContains(t, err, `unknown; want linux, gvisor or unsafe-process`)
	_, err = NewDriver("", Config{})
	require.ErrorContains(t, err, "sandbox command: required")
}

func TestCheckGVisor(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t, GVisorDriverName, sh("true"))
	require.NoError(t, d.Check(context.Background()))
}

func TestDriverNames(t *testing.T) {
	for _, name := range []string{"", LinuxDriverName, GVisorDriverName, ProcessDriverName} {
		d, err := NewDriver(name, sh("true"))
		require.NoError(t, err)
		require.Equal(t, cmp.Or(name, LinuxDriverName), d.Name())
	}
}

func TestCreateFailsCleanly(t *testing.T) {
	t.Parallel()
	// Its own cgroup root, to see that nothing is left in it.
	root := "/oneshot-test-" + NewID()
	// A runtime that cannot be executed: its interpreter does not exist.
	script := filepath.Join(t.TempDir(), "runtime")
	require.NoError(t, os.WriteFile(script, []byte("#!/nonexistent/interpreter\n"), 0o755))
	_, err := NewLinuxDriver(Config{Command: []string{script}, CgroupRoot: root}).Create(context.Background(), Spec{})
	require.ErrorContains(t, err, "execute runtime /oneshot/runtime: no such file or directory")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = NewLinuxDriver(Config{Command: []string{"/bin/true"}, CgroupRoot: root}).Create(ctx, Spec{})
	require.ErrorIs(t, err, context.Canceled)

	dirs, err := filepath.Glob("/sys/fs/cgroup/*" + root)
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, d := range dirs {
		sub, err := filepath.Glob(d + "/sbx_*")
		require.NoError(t, err)
		require.Empty(t, sub, "a cgroup left behind")
	}
	require.NoError(t, rmdirAll(dirs))
}

func TestWorkerDeathKillsSandboxes(t *testing.T) {
	forEachDriver(t, func(t *testing.T, name string) {
		newTestDriver(t, name, sh("true")) // skips gvisor without runsc
		marker := "sleep 3" + strconv.Itoa(int(time.Now().UnixNano()%100000))
		if name == GVisorDriverName {
			marker += "1"
		}
		exe, err := os.Executable()
		require.NoError(t, err)
		worker := exec.Command(exe, "sandbox-helper", "worker", name, marker+" & "+marker+"; wait")
		out, err := worker.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, worker.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, "the worker said nothing")
		fields := strings.Fields(line)
		require.True(t, strings.HasPrefix(fields[0], "sbx_"), line)
		id, dirs := fields[0], fields[1:]
		t.Cleanup(func() { // what a dead worker leaves: empty cgroups; gVisor's bundle and state
			rmdirAll(dirs)
			bundles, _ := filepath.Glob(filepath.Join(os.TempDir(), "oneshot-gvisor-"+id+"-*"))
			for _, b := range bundles {
				os.RemoveAll(b)
			}
			if name == GVisorDriverName {
				exec.Command("runsc", "--root="+Config{}.withDefaults().RunscRoot, "delete", "-force", id).Run()
			}
			requireNothingLeft(t, id)
		})

		require.NoError(t, worker.Process.Kill())
		worker.Wait()
		require.Eventually(t, func() bool {
			for _, d := range dirs {
				if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
					return false
				}
			}
			return len(hostProcessesWith(marker)) == 0
		}, 10*time.Second, 10*time.Millisecond, "the sandbox outlived its worker")
	})
}
