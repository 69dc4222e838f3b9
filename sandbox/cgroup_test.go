package sandbox

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	// mountinfoHybrid is this kind of host: v1 controllers, v2 without them.
	mountinfoHybrid = `24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
`
	// mountinfoV2 is a pure cgroup v2 host.
	mountinfoV2 = `24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate
`
)

func TestCgroupHostChoice(t *testing.T) {
	tests := []struct {
		name          string
		mountinfo     string
		v2Controllers []string
		want          string // "v1", "v2" or an error's text
	}{
		{"hybrid", mountinfoHybrid, []string{"hugetlb"}, "v1"},
		{"pure v2", mountinfoV2, []string{"cpuset", "cpu", "io", "memory", "pids"}, "v2"},
		{"v2 without memory", mountinfoV2, []string{"cpu", "pids"}, "no memory controller"},
		{"nothing mounted", "24 1 254:0 / / rw - ext4 /dev/vda rw\n", nil, "no cgroup file system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseCgroupMounts(tt.mountinfo).host("/oneshot", tt.v2Controllers)
			switch tt.want {
			case "v1":
				require.NoError(t, err)
				require.Equal(t, &cgroupV1Host{root: "/oneshot", mounts: map[string]string{
					"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
					"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
				}}, h)
			case "v2":
				require.NoError(t, err)
				require.Equal(t, &cgroupV2Host{mount: "/sys/fs/cgroup", root: "/oneshot"}, h)
			default:
				require.ErrorContains(t, err, tt.want)
			}
		})
	}
	require.Equal(t, `/a b\c`, unescapeMount(`/a\040b\134c`))
}

// TestCgroupV2Files checks what the v2 code writes, in a folder standing in
// for a v2 hierarchy (no kernel behind it: this host has no v2 memory controller).
func TestCgroupV2Files(t *testing.T) {
	mount := t.TempDir()
	h := &cgroupV2Host{mount: mount, root: "/oneshot/sandboxes"}
	require.NoError(t, h.prepare())
	for _, d := range []string{"", "oneshot", "oneshot/sandboxes"} {
		b, err := os.ReadFile(filepath.Join(mount, d, "cgroup.subtree_control"))
		require.NoError(t, err)
		require.Equal(t, "+memory +cpu +pids", string(b))
	}
	cg, err := h.create("sbx_test", limits{cpu: 0.5, memoryMiB: 64, pidsMax: 100})
	require.NoError(t, err)
	dir := filepath.Join(mount, "oneshot/sandboxes/sbx_test")
	for name, want := range map[string]string{
		"memory.max": "67108864", "memory.oom.group": "1", "cpu.max": "50000 100000", "pids.max": "100",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, want, string(b), name)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n"), 0o644))
	require.Equal(t, 1, cg.oomKills())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cpu.stat"), []byte("usage_usec 1500000\nuser_usec 1\n"), 0o644))
	usage, err := cg.cpuUsage()
	require.NoError(t, err)
	require.Equal(t, "1.5s", usage.String())
}

// TestCgroupV2Kill kills a process tree through cgroup.kill on this host's
// real v2 hierarchy, which has no controllers but can hold and kill processes.
func TestCgroupV2Kill(t *testing.T) {
	t.Parallel()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	mount := parseCgroupMounts(string(mounts)).v2
	if mount == "" {
		t.Skip("no cgroup v2 hierarchy")
	}
	cg := &cgroupV2{dir: filepath.Join(mount, "oneshot-test-"+NewID())}
	require.NoError(t, os.Mkdir(cg.dir, 0o755))
	defer cg.remove()

	// The shell forks only once it is in the cgroup: after it reads a line.
	cmd := exec.Command("/bin/sh", "-c", `read x; (sleep 3600 &); sleep 3600 & echo started; wait`)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	require.NoError(t, cg.add(cmd.Process.Pid))
	_, err = in.Write([]byte("go\n"))
	require.NoError(t, err)
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "started\n", line)
	b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	require.NoError(t, err)
	pids := strings.Fields(string(b))
	require.Len(t, pids, 3)

	require.NoError(t, cg.kill())
	cmd.Wait()
	b, err = os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(string(b)))
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		require.True(t, gone(pid), "pid %d survived", pid)
	}
	require.NoError(t, cg.remove())
	require.NoDirExists(t, cg.dir)
}

func TestCgroupSweep(t *testing.T) {
	root := t.TempDir()
	old := time.Now().Add(-time.Hour)
	for _, d := range []string{"sbx_old", "sbx_busy", "sbx_new", "other"} {
		require.NoError(t, os.Mkdir(filepath.Join(root, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "sbx_busy", "cgroup.procs"), []byte("123\n"), 0o644))
	for _, d := range []string{"sbx_old", "sbx_busy", "other"} {
		require.NoError(t, os.Chtimes(filepath.Join(root, d), old, old))
	}
	require.Equal(t, 1, sweep([]string{root}))
	require.NoDirExists(t, filepath.Join(root, "sbx_old"))
	for _, d := range []string{"sbx_busy", "sbx_new", "other"} {
		require.DirExists(t, filepath.Join(root, d))
	}
}

// bareV2Host makes v2 cgroups without limits: this host's v2 hierarchy has
// no controllers, but can show that the init is cloned straight into one.
type bareV2Host struct{ root string }

func (h *bareV2Host) version() int    { return 2 }
func (h *bareV2Host) prepare() error  { return os.MkdirAll(h.root, 0o755) }
func (h *bareV2Host) roots() []string { return []string{h.root} }
func (h *bareV2Host) create(name string, _ limits) (cgroup, error) {
	cg := &cgroupV2{dir: filepath.Join(h.root, name)}
	return cg, os.Mkdir(cg.dir, 0o755)
}

func TestCloneIntoCgroupV2(t *testing.T) {
	t.Parallel()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	mount := parseCgroupMounts(string(mounts)).v2
	if mount == "" {
		t.Skip("no cgroup v2 hierarchy")
	}
	d := NewLinuxDriver(sh(`echo started; read x`))
	require.NoError(t, d.setup())
	h := &bareV2Host{root: filepath.Join(mount, "oneshot-test-"+NewID())}
	require.NoError(t, h.prepare())
	defer os.Remove(h.root)
	d.cgroups = h

	sb := start(t, d, Spec{})
	line, err := bufio.NewReader(sb.Stdout()).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "started\n", line)
	require.False(t, d.noCloneInto.Load(), "clone3 into the cgroup failed")
	pid := sb.(*linuxSandbox).cmd.Process.Pid
	require.Equal(t, []int{pid}, cgroupPids(t, sb))
	require.NoError(t, sb.Destroy())
	require.NoDirExists(t, cgroupOf(t, sb).cgroupDirs()[0])
}
