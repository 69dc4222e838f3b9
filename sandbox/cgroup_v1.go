//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupV1Host makes sandbox cgroups in the v1 hierarchies of the memory, cpu,
// cpuacct (optional) and pids controllers.
type cgroupV1Host struct {
	mounts map[string]string // controller -> hierarchy mount
	root   string
}

func (h *cgroupV1Host) version() int { return 1 }

// dirsOf returns a cgroup's folder in each hierarchy, once per hierarchy (cpu
// and cpuacct are often mounted together).
func (h *cgroupV1Host) dirsOf(rel string) map[string]string {
	dirs := map[string]string{}
	for c, m := range h.mounts {
		dirs[c] = filepath.Join(m, rel)
	}
	return dirs
}

func (h *cgroupV1Host) prepare() error {
	for c, d := range h.dirsOf(h.root) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup v1: create %s root: %w (the worker needs write access to %s)", c, err, h.mounts[c])
		}
	}
	return nil
}

func (h *cgroupV1Host) roots() []string {
	var roots []string
	for _, d := range h.dirsOf(h.root) {
		if !slices.Contains(roots, d) {
			roots = append(roots, d)
		}
	}
	return roots
}

func (h *cgroupV1Host) create(name string, l limits) (cgroup, error) {
	byController := h.dirsOf(filepath.Join(h.root, name))
	cg := &cgroupV1{memory: byController["memory"], pids: byController["pids"], cpuacct: byController["cpuacct"]}
	for _, d := range byController {
		if !slices.Contains(cg.all, d) {
			cg.all = append(cg.all, d)
		}
	}
	fail := func(err error) (cgroup, error) {
		rmdirAll(cg.all)
		return nil, err
	}
	for _, d := range cg.all {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fail(fmt.Errorf("cgroup v1: %w", err))
		}
	}
	mem := strconv.FormatInt(int64(l.memoryMiB)<<20, 10)
	settings := []struct{ dir, name, value string }{
		{cg.memory, "memory.limit_in_bytes", mem},
		{byController["cpu"], "cpu.cfs_period_us", "100000"},
		{byController["cpu"], "cpu.cfs_quota_us", strconv.Itoa(int(l.cpu * 100000))},
		{cg.pids, "pids.max", strconv.Itoa(l.pidsMax)},
	}
	// Without swap accounting there is no memsw file, and nothing to limit.
	if _, err := os.Stat(filepath.Join(cg.memory, "memory.memsw.limit_in_bytes")); err == nil {
		settings = append(settings, struct{ dir, name, value string }{cg.memory, "memory.memsw.limit_in_bytes", mem})
	}
	for _, s := range settings {
		if err := writeFile(s.dir, s.name, s.value); err != nil {
			return fail(err)
		}
	}
	if err := cg.watchOOM(); err != nil {
		return fail(err)
	}
	return cg, nil
}

// cgroupV1 is one sandbox's cgroup in each v1 hierarchy.
type cgroupV1 struct {
	memory, pids, cpuacct string
	all                   []string

	oom     *os.File // eventfd signalled on OOM
	oomed   atomic.Bool
	oomDone chan struct{}
	oomOnce sync.Once
}

// watchOOM kills the whole cgroup when its memory limit is hit: v1 has no
// memory.oom.group, and the kernel would kill only the largest process. The
// kernel's OOM killer is turned off for the cgroup, so that a process over
// the limit waits in the kernel until the watcher kills them all: a runtime
// never sees a tool killed for memory and carries on.
func (cg *cgroupV1) watchOOM() error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("cgroup v1: eventfd: %w", err)
	}
	cg.oom = os.NewFile(uintptr(efd), "oom-eventfd")
	control, err := os.Open(filepath.Join(cg.memory, "memory.oom_control"))
	if err != nil {
		cg.oom.Close()
		return fmt.Errorf("cgroup v1: %w", err)
	}
	defer control.Close()
	err = writeFile(cg.memory, "cgroup.event_control", fmt.Sprintf("%d %d", efd, control.Fd()))
	if err != nil {
		cg.oom.Close()
		return err
	}
	// Best effort: where it cannot be turned off, the kernel kills the
	// largest process, and the watcher the rest just after.
	writeFile(cg.memory, "memory.oom_control", "1")
	cg.oomDone = make(chan struct{})
	go func() {
		defer close(cg.oomDone)
		var b [8]byte
		// The event comes before any kernel OOM kill, so it cannot wait for
		// oom_kill to count. (It would also come when the cgroup is removed,
		// but remove closes the eventfd first.)
		if _, err := cg.oom.Read(b[:]); err == nil {
			cg.oomed.Store(true)
			cg.kill()
		}
	}()
	return nil
}

func (cg *cgroupV1) add(pid int) error {
	for _, d := range cg.all {
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (cg *cgroupV1) kill() error { return killProcs(filepath.Join(cg.pids, "cgroup.procs")) }

func (cg *cgroupV1) oomKills() int {
	n, _ := readKey(filepath.Join(cg.memory, "memory.oom_control"), "oom_kill")
	if n == 0 && cg.oomed.Load() {
		n = 1 // the watcher killed the sandbox before the kernel chose a victim
	}
	return int(n)
}

func (cg *cgroupV1) cpuUsage() (time.Duration, error) {
	if cg.cpuacct == "" {
		return 0, errors.New("cgroup v1: no cpuacct controller")
	}
	b, err := os.ReadFile(filepath.Join(cg.cpuacct, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(string(trimNewline(b)), 10, 64)
	return time.Duration(ns), err
}

func (cg *cgroupV1) remove() error {
	cg.oomOnce.Do(func() {
		cg.oom.Close() // wakes the watcher if the cgroup's removal has not
		<-cg.oomDone
	})
	return rmdirAll(cg.all)
}

func (cg *cgroupV1) dirs() []string { return cg.all }

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
