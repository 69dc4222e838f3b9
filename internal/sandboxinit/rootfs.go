//go:build linux

package sandboxinit

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// Rootfs is the plan of a sandbox's file system and process, made by the
// driver on the host and carried out by the init (or turned into an OCI bundle
// by the gvisor driver). Paths are inside the sandbox unless named Source.
type Rootfs struct {
	Binds []Bind
	Links []Symlink
	Files []File
	Tmpfs []Tmpfs
	Path  string // the runtime binary
	Argv  []string
	Env   []string
}

// Bind is a bind mount, read-only unless it is a device node.
type Bind struct {
	Source string // on the host
	Target string
	Dir    bool
	Device bool // a node under /dev: writable; gVisor brings its own
}

// Symlink is a symbolic link at Path pointing to Target.
type Symlink struct {
	Path   string
	Target string
	Device bool // under /dev
}

// File is a file written for each sandbox.
type File struct {
	Path string
	Data string
}

// Tmpfs is a writable, size-bounded tmpfs.
type Tmpfs struct {
	Path    string
	SizeMiB int
	Mode    string
	Owned   bool // by the sandbox user
}

// MountPoints creates under root what the plan's mounts need to exist, and
// the plan's own files and links. Without device, it leaves /dev's out. It
// makes raw system calls: in the init, the os package's costs add up.
func (r *Rootfs) MountPoints(root string, device bool) error {
	var errs []error
	made := map[string]bool{}
	var mkdir func(p string)
	mkdir = func(p string) {
		if p == "/" || made[p] {
			return
		}
		mkdir(path.Dir(p))
		made[p] = true
		if err := unix.Mkdir(root+p, 0o755); err != nil && err != unix.EEXIST {
			errs = append(errs, fmt.Errorf("mkdir %s: %w", p, err))
		}
	}
	write := func(p, data string) {
		mkdir(path.Dir(p))
		fd, err := unix.Open(root+p, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err == nil {
			_, err = unix.Write(fd, []byte(data))
			unix.Close(fd)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", p, err))
		}
	}
	for _, p := range []string{"/proc", "/dev", "/etc"} {
		mkdir(p)
	}
	for _, t := range r.Tmpfs {
		mkdir(t.Path)
	}
	for _, b := range r.Binds {
		switch {
		case b.Device && !device:
		case b.Dir:
			mkdir(b.Target)
		default:
			write(b.Target, "")
		}
	}
	for _, l := range r.Links {
		if !l.Device || device {
			mkdir(path.Dir(l.Path))
			if err := unix.Symlink(l.Target, root+l.Path); err != nil {
				errs = append(errs, fmt.Errorf("symlink %s: %w", l.Path, err))
			}
		}
	}
	for _, f := range r.Files {
		write(f.Path, f.Data)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("root file system: %w", err)
	}
	return nil
}

// mount makes a tmpfs the new root, mounts the plan into it, and pivots into
// it. The mount namespace is the sandbox's own: the host sees none of this,
// and all of it goes with the sandbox's last process.
func (r *Rootfs) mount() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// Open the sources first: the new root hides /tmp, where they may live.
	sources := make([]string, len(r.Binds))
	for i, b := range r.Binds {
		fd, err := unix.Open(b.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", b.Source, err)
		}
		defer unix.Close(fd)
		sources[i] = "/proc/self/fd/" + strconv.Itoa(fd)
	}
	const root = "/tmp"
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	if err := r.MountPoints(root, true); err != nil {
		return err
	}
	// The read-only part: the root and every bind but the devices.
	for i, b := range r.Binds {
		if !b.Device {
			if err := unix.Mount(sources[i], root+b.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind %s: %w", b.Source, err)
			}
		}
	}
	if err := readOnly(root, r.Binds); err != nil {
		return err
	}
	// The writable part.
	for i, b := range r.Binds {
		if b.Device {
			if err := unix.Mount(sources[i], root+b.Target, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %s: %w", b.Source, err)
			}
		}
	}
	if err := unix.Mount("proc", root+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, t := range r.Tmpfs {
		opts := fmt.Sprintf("mode=%s,size=%dm", t.Mode, t.SizeMiB)
		if t.Owned {
			opts += fmt.Sprintf(",uid=%d,gid=%d", UID, GID)
		}
		if err := unix.Mount("tmpfs", root+t.Path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("mount %s: %w", t.Path, err)
		}
	}
	// pivot_root(".", ".") stacks the old root under the new one; detach it.
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir(Workspace); err != nil {
		return fmt.Errorf("chdir: %w", err)
	}
	return nil
}

// readOnly makes the root and the binds under it read-only, nosuid and nodev:
// in one system call where mount_setattr exists (Linux 5.12), else one by one.
func readOnly(root string, binds []Bind) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	err := unix.MountSetattr(unix.AT_FDCWD, root, unix.AT_RECURSIVE, &attr)
	if !errors.Is(err, unix.ENOSYS) {
		if err != nil {
			return fmt.Errorf("root read-only: %w", err)
		}
		return nil
	}
	for _, b := range binds {
		if !b.Device {
			if err := remount(root+b.Target, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV); err != nil {
				return fmt.Errorf("bind %s read-only: %w", b.Source, err)
			}
		}
	}
	if err := remount(root, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return fmt.Errorf("root read-only: %w", err)
	}
	return nil
}

// remount changes a mount's flags, keeping those it already has: in a user
// namespace, the kernel refuses to clear flags the host set (noexec...).
func remount(target string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	for _, f := range [][2]uintptr{
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f[0] != 0 {
			flags |= f[1]
		}
	}
	return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|flags, "")
}
