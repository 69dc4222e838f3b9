//go:build linux

package sandboxinit

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestConfigText(t *testing.T) {
	want := Config{UserNS: true, Root: &Rootfs{
		Binds: []Bind{{Source: "/usr", Target: "/usr", Dir: true}, {Source: "/dev/null", Target: "/dev/null", Device: true}},
		Links: []Symlink{{Path: "/bin", Target: "usr/bin"}, {Path: "/dev/fd", Target: "/proc/self/fd", Device: true}},
		Files: []File{{Path: "/etc/hosts", Data: "127.0.0.1\tlocalhost\n::1 localhost\n"}, {Path: "/etc/empty"}},
		Tmpfs: []Tmpfs{{Path: "/workspace", SizeMiB: 1024, Mode: "0755", Owned: true}},
		Path:  "/oneshot/agent",
		Argv:  []string{"/oneshot/agent", "run", "a \"quoted\"\targ\nwith lines", "ü"},
		Env:   []string{"A=1", "B=x=y", "C="},
	}}
	text, err := want.MarshalText()
	require.NoError(t, err)
	var got Config
	require.NoError(t, got.UnmarshalText(text))
	require.Equal(t, want, got)

	require.ErrorContains(t, new(Config).UnmarshalText([]byte("bind\t\"/usr\"\n")), "bad record")
	require.ErrorContains(t, new(Config).UnmarshalText([]byte("path\tnot-quoted\n")), "line 1")
}

func TestSeccompProgram(t *testing.T) {
	p, err := seccompProgram()
	require.NoError(t, err)
	// It checks the architecture first, and allows what it does not refuse.
	require.Equal(t, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: seccompArch}, p[0])
	require.Equal(t, uint32(auditArch), p[1].K)
	require.Equal(t, uint32(unix.SECCOMP_RET_KILL_PROCESS), p[2].K)
	require.Equal(t, uint32(unix.SECCOMP_RET_ALLOW), p[len(p)-1].K)
	// Every refused call is a compare followed by its return.
	refused := map[uint32]bool{}
	for i, ins := range p {
		if ins.Code == unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K && ins.Jt == 0 && ins.Jf == 1 {
			require.Equal(t, uint16(unix.BPF_RET|unix.BPF_K), p[i+1].Code)
			refused[ins.K] = true
		}
	}
	for _, nr := range []uintptr{unix.SYS_MOUNT, unix.SYS_PTRACE, unix.SYS_BPF, unix.SYS_SETNS, unix.SYS_UNSHARE, unix.SYS_KEYCTL, unix.SYS_CLONE3} {
		require.True(t, refused[uint32(nr)], "system call %d is not refused", nr)
	}
	for _, nr := range []uintptr{unix.SYS_READ, unix.SYS_EXECVE, unix.SYS_OPENAT} {
		require.False(t, refused[uint32(nr)], "system call %d is refused", nr)
	}
}
