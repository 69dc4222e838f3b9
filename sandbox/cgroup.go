//go:build linux

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// limits are what one sandbox's cgroup enforces.
type limits struct {
	cpu       float64 // cores
	memoryMiB int
	pidsMax   int
}

// cgroupHost makes the cgroups of sandboxes under one root, with cgroup v2 or v1.
type cgroupHost interface {
	// version is 1 or 2.
	version() int
	// prepare creates the root and enables what its children need. Idempotent.
	prepare() error
	// roots are the root's folders, one per hierarchy.
	roots() []string
	// create makes a cgroup enforcing l. Exceeding its memory kills everything
	// in it, as one.
	create(name string, l limits) (cgroup, error)
}

// cgroup is the cgroup of one sandbox.
type cgroup interface {
	// add moves a process (and so its future children) into the cgroup.
	add(pid int) error
	// kill kills every process in the cgroup and returns once it is empty.
	kill() error
	// oomKills counts the processes the memory limit killed.
	oomKills() int
	// cpuUsage is the CPU time the cgroup has used.
	cpuUsage() (time.Duration, error)
	// remove removes the cgroup, which must be empty.
	remove() error
	// dirs are the cgroup's folders, for tests and messages.
	dirs() []string
}

// cgroupControllers are the controllers a sandbox needs.
var cgroupControllers = []string{"memory", "cpu", "pids"}

// newCgroupHost picks cgroup v2 when its hierarchy offers every controller a
// sandbox needs, else v1 (as on hybrid hosts, where v2 is mounted without them).
func newCgroupHost(root string) (cgroupHost, error) {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	m := parseCgroupMounts(string(info))
	return m.host(root, readControllers(m.v2))
}

// cgroupMounts are where the cgroup hierarchies are mounted.
type cgroupMounts struct {
	v2 string            // the cgroup2 mount, or ""
	v1 map[string]string // v1 controller -> its hierarchy's mount
}

func (m cgroupMounts) host(root string, v2Controllers []string) (cgroupHost, error) {
	if m.v2 != "" && hasAll(v2Controllers, cgroupControllers) {
		return &cgroupV2Host{mount: m.v2, root: root}, nil
	}
	var missingV1, missingV2 []string
	for _, c := range cgroupControllers {
		if m.v1[c] == "" {
			missingV1 = append(missingV1, c)
		}
		if !slices.Contains(v2Controllers, c) {
			missingV2 = append(missingV2, c)
		}
	}
	switch {
	case len(missingV1) == 0:
		return &cgroupV1Host{mounts: m.v1, root: root}, nil
	case m.v2 != "":
		return nil, fmt.Errorf("cgroups: no %s controller in the cgroup v2 hierarchy at %s (it offers %v), "+
			"and no cgroup v1 hierarchy has them; sandboxes cannot be limited: enable them for the worker's "+
			"cgroups (as root: echo +memory +cpu +pids > %s/cgroup.subtree_control; under systemd: Delegate=yes), "+
			"or in a container run it with a private cgroup namespace and a writable /sys/fs/cgroup",
			strings.Join(missingV2, ", "), m.v2, v2Controllers, m.v2)
	case len(m.v1) > 0:
		return nil, fmt.Errorf("cgroups: no %s controller in cgroup v1 and no cgroup v2 hierarchy; "+
			"mount it (mount -t cgroup -o %s cgroup /sys/fs/cgroup/%s)", missingV1[0], missingV1[0], missingV1[0])
	default:
		return nil, errors.New("cgroups: no cgroup file system is mounted; " +
			"mount cgroup v2 at /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)")
	}
}

// parseCgroupMounts reads the cgroup mounts out of /proc/self/mountinfo.
func parseCgroupMounts(mountinfo string) cgroupMounts {
	m := cgroupMounts{v1: map[string]string{}}
	for line := range strings.Lines(mountinfo) {
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		fields, sup := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(sup) < 3 {
			continue
		}
		point := unescapeMount(fields[4])
		switch sup[0] {
		case "cgroup2":
			if m.v2 == "" {
				m.v2 = point
			}
		case "cgroup":
			for opt := range strings.SplitSeq(sup[2], ",") {
				if slices.Contains([]string{"memory", "cpu", "cpuacct", "pids"}, opt) && m.v1[opt] == "" {
					m.v1[opt] = point
				}
			}
		}
	}
	return m
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readControllers(dir string) []string {
	if dir == "" {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	return strings.Fields(string(b))
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// writeFile writes one cgroup setting.
func writeFile(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: set %s to %q: %w", name, value, err)
	}
	return nil
}

// readKey reads "key value" lines (memory.events, cpu.stat, memory.oom_control).
func readKey(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// sweep removes the sandbox cgroups a dead worker left under the roots: empty
// ones, older than a minute (a cgroup being created is empty for a moment).
func sweep(roots []string) (removed int) {
	for _, root := range roots {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), "sbx_") {
				continue
			}
			dir := filepath.Join(root, e.Name())
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < time.Minute || readFileString(filepath.Join(dir, "cgroup.procs")) != "" {
				continue
			}
			if syscall.Rmdir(dir) == nil {
				removed++
			}
		}
	}
	return removed
}

// killProcsTimeout bounds how long killProcs waits for a cgroup to empty. A
// killed process leaves its cgroup once all its threads have exited: quick
// for most, but gVisor's many-threaded processes took over 200 ms on a busy
// machine.
const killProcsTimeout = 10 * time.Second

// killProcs kills every process listed in a cgroup.procs file until it is
// empty. Processes may fork while it runs, so it reads the list again.
func killProcs(procsFile string) error {
	deadline := time.Now().Add(killProcsTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		b, err := os.ReadFile(procsFile)
		if err != nil {
			return fmt.Errorf("cgroup: kill: %w", err)
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: kill: processes still in %s after %s: %s", procsFile, killProcsTimeout, strings.Join(pids, " "))
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(wait) // let the kernel reap what was killed
	}
}

// rmdirAll removes cgroup folders, retrying while the last processes are
// still leaving them.
func rmdirAll(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		var err error
		for i := range 100 {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(time.Duration(i+1) * 100 * time.Microsecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
