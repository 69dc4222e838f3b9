package sandbox

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

const rootlessEnv = "ONESHOT_TEST_ROOTLESS_CGROUP_ROOT"

// TestRootless runs the linux driver as an unprivileged user (65534), with a
// user namespace and a cgroup delegated to that user, as a worker that is not
// root would. It runs TestRootlessInner in a copy of this test binary.
func TestRootless(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to delegate a cgroup and become another user")
	}
	hosts, err := newCgroupHost("/")
	require.NoError(t, err)
	v1, ok := hosts.(*cgroupV1Host)
	if !ok {
		t.Skip("delegation is set up here for cgroup v1 only")
	}

	// A cgroup per controller owned by the user, as systemd's Delegate=yes would make.
	root := "/oneshot-rootless-" + NewID()
	for _, m := range v1.mounts {
		dir := filepath.Join(m, root)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			require.NoError(t, err)
		}
		t.Cleanup(func() { require.NoError(t, rmdirAll([]string{dir})) })
		require.NoError(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		}))
	}

	// The user must be able to execute the test binary.
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	bin := filepath.Join(dir, "sandbox.test")
	copyFile(t, exe, bin)

	cmd := exec.Command(bin, "-test.run=^TestRootlessInner$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{rootlessEnv + "=" + root, "PATH=/usr/bin:/bin", "TMPDIR=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestRootlessInner")
}

func TestRootlessInner(t *testing.T) {
	root := os.Getenv(rootlessEnv)
	if root == "" {
		t.Skip("run by TestRootless")
	}
	require.NotZero(t, os.Geteuid())
	cfg := sh(`id -u; grep -E '^Cap(Eff|Bnd)' /proc/self/status | tr -d '\t'; echo > /usr/x 2>/dev/null || echo ro; echo hi > /workspace/x && cat /workspace/x`)
	cfg.CgroupRoot = root
	d := NewLinuxDriver(cfg)
	require.NoError(t, d.Check(context.Background()))
	out, _, exit := run(t, LinuxDriverName, cfg, Spec{MemoryMiB: 128})
	require.Zero(t, exit.Code)
	require.Equal(t, "65534\nCapEff:0000000000000000\nCapBnd:0000000000000000\nro\nhi\n", out)

	alloc := helperCmd(t, "alloc", "4096")
	alloc.CgroupRoot = root
	_, _, exit = run(t, LinuxDriverName, alloc, Spec{MemoryMiB: 64})
	require.True(t, exit.OOMKilled)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
