//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/oneshot-dev/oneshot/internal/sandboxinit"
)

// runtimeDir is where a runtime binary from outside /usr is bound.
const runtimeDir = "/oneshot"

// etcShared are the host's /etc entries a sandbox sees, read-only: what the
// dynamic loader, TLS, time zones and shells read. Nothing with secrets.
var etcShared = []string{
	"alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "debian_version",
	"inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "magic", "mime.types",
	"os-release", "profile", "profile.d", "ssl", "timezone",
}

// etcOwn are the /etc files written for each sandbox, in place of the host's.
var etcOwn = map[string]string{
	"passwd":        "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/workspace:/bin/sh\n",
	"group":         "root:x:0:\nnogroup:x:65534:\n",
	"hosts":         "127.0.0.1\tlocalhost " + sandboxinit.Hostname + "\n::1\tlocalhost\n",
	"hostname":      sandboxinit.Hostname + "\n",
	"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
	"resolv.conf":   "# no network in a sandbox\n",
}

// newRootfs plans a sandbox's file system for a runtime command: a read-only
// /usr (with /bin, /lib... as on the host), a few /etc entries, minimal /dev,
// /proc, and writable, bounded /workspace and /tmp.
func newRootfs(cfg Config, command []string) (*sandboxinit.Rootfs, error) {
	r := &sandboxinit.Rootfs{}
	share(r, "/usr")
	// Merged /usr makes /bin, /lib... symlinks; older layouts have folders.
	for _, top := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		share(r, top)
	}
	for _, name := range etcShared {
		share(r, "/etc/"+name)
	}
	for name, data := range etcOwn {
		r.Files = append(r.Files, sandboxinit.File{Path: "/etc/" + name, Data: data})
	}
	slices.SortFunc(r.Files, func(a, b sandboxinit.File) int { return strings.Compare(a.Path, b.Path) })
	for _, dev := range []string{"null", "zero", "full", "random", "urandom"} {
		r.Binds = append(r.Binds, sandboxinit.Bind{Source: "/dev/" + dev, Target: "/dev/" + dev, Device: true})
	}
	for _, l := range [][2]string{
		{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"}, {"shm", "/tmp"},
	} {
		r.Links = append(r.Links, sandboxinit.Symlink{Path: "/dev/" + l[0], Target: l[1], Device: true})
	}
	r.Tmpfs = []sandboxinit.Tmpfs{
		{Path: sandboxinit.Workspace, SizeMiB: cfg.WorkspaceMiB, Mode: "0755", Owned: true},
		{Path: "/tmp", SizeMiB: cfg.TmpMiB, Mode: "1777"},
	}

	bin, err := exec.LookPath(command[0])
	if err != nil {
		return nil, fmt.Errorf("sandbox command: %w", err)
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return nil, fmt.Errorf("sandbox command: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, fmt.Errorf("sandbox command: %w", err)
	}
	r.Path = bin
	r.Argv = slices.Clone(command)
	if !visible(r, bin) {
		r.Path = path.Join(runtimeDir, filepath.Base(bin))
		r.Argv[0] = r.Path
		r.Binds = append(r.Binds, sandboxinit.Bind{Source: bin, Target: r.Path})
	}
	r.Env = append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + sandboxinit.Workspace,
		"TMPDIR=/tmp",
		"LANG=C.UTF-8",
		"USER=nobody",
		"ONESHOT_WORKSPACE=" + sandboxinit.Workspace,
	}, cfg.Env...)
	return r, nil
}

// share makes a host path visible at the same path: a symlink is copied, a
// file or folder bound read-only, a missing path skipped.
func share(r *sandboxinit.Rootfs, p string) {
	fi, err := os.Lstat(p)
	switch {
	case err != nil:
	case fi.Mode()&os.ModeSymlink != 0:
		if link, err := os.Readlink(p); err == nil {
			r.Links = append(r.Links, sandboxinit.Symlink{Path: p, Target: link})
		}
	case fi.IsDir() || fi.Mode().IsRegular():
		r.Binds = append(r.Binds, sandboxinit.Bind{Source: p, Target: p, Dir: fi.IsDir()})
	}
}

// visible says whether a host file is reachable at the same path inside,
// through a folder bound there.
func visible(r *sandboxinit.Rootfs, hostPath string) bool {
	for _, b := range r.Binds {
		if b.Dir && b.Source == b.Target && strings.HasPrefix(hostPath, b.Source+"/") {
			return true
		}
	}
	return false
}
