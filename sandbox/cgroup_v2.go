//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupV2Host makes sandbox cgroups in the unified (v2) hierarchy.
type cgroupV2Host struct {
	mount string
	root  string
}

func (h *cgroupV2Host) version() int { return 2 }

// prepare creates the root and enables memory, cpu and pids for the children
// of every cgroup from the mount down to it. The "no internal processes" rule
// of v2 means none of these, except the host's root, may hold processes.
func (h *cgroupV2Host) prepare() error {
	dir := h.mount
	enable := "+" + strings.Join(cgroupControllers, " +")
	for _, part := range strings.Split(strings.Trim(h.root, "/"), "/") {
		if err := h.enable(dir, enable); err != nil {
			return err
		}
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroup v2: create root %s: %w (the worker needs write access to it, "+
				"e.g. as root or through systemd's Delegate=yes)", dir, err)
		}
	}
	return h.enable(dir, enable)
}

func (h *cgroupV2Host) enable(dir, controllers string) error {
	have := readFileString(filepath.Join(dir, "cgroup.subtree_control"))
	if hasAll(strings.Fields(strings.ReplaceAll(have, "+", "")), cgroupControllers) {
		return nil
	}
	if err := writeFile(dir, "cgroup.subtree_control", controllers); err != nil {
		return fmt.Errorf("cgroup v2: enable %s for the children of %s: %w "+
			"(a cgroup with processes of its own cannot; set CgroupRoot to a delegated cgroup that holds none)",
			controllers, dir, err)
	}
	return nil
}

func (h *cgroupV2Host) roots() []string { return []string{filepath.Join(h.mount, h.root)} }

func (h *cgroupV2Host) create(name string, l limits) (cgroup, error) {
	cg := &cgroupV2{dir: filepath.Join(h.mount, h.root, name)}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	settings := [][2]string{
		{"memory.max", strconv.FormatInt(int64(l.memoryMiB)<<20, 10)},
		{"memory.oom.group", "1"}, // an OOM kills the sandbox, not one of its processes
		{"cpu.max", fmt.Sprintf("%d 100000", int(l.cpu*100000))},
		{"pids.max", strconv.Itoa(l.pidsMax)},
	}
	if _, err := os.Stat(filepath.Join(cg.dir, "memory.swap.max")); err == nil {
		settings = append(settings, [2]string{"memory.swap.max", "0"})
	}
	for _, s := range settings {
		if err := writeFile(cg.dir, s[0], s[1]); err != nil {
			rmdirAll([]string{cg.dir})
			return nil, err
		}
	}
	return cg, nil
}

// cgroupV2 is one sandbox's cgroup.
type cgroupV2 struct{ dir string }

func (cg *cgroupV2) add(pid int) error {
	return writeFile(cg.dir, "cgroup.procs", strconv.Itoa(pid))
}

func (cg *cgroupV2) kill() error {
	// cgroup.kill (Linux 5.14) kills the whole tree at once, forks included.
	if err := writeFile(cg.dir, "cgroup.kill", "1"); err == nil {
		return waitEmpty(cg.dir)
	}
	return killProcs(filepath.Join(cg.dir, "cgroup.procs"))
}

// waitEmpty waits until the kernel has reaped every process of a killed cgroup.
func waitEmpty(dir string) error {
	for i := range 200 {
		if v, err := readKey(filepath.Join(dir, "cgroup.events"), "populated"); err != nil || v == 0 {
			return nil
		}
		time.Sleep(time.Duration(i+1) * 50 * time.Microsecond)
	}
	return fmt.Errorf("cgroup v2: processes still in %s", dir)
}

func (cg *cgroupV2) oomKills() int {
	n, _ := readKey(filepath.Join(cg.dir, "memory.events"), "oom_kill")
	g, _ := readKey(filepath.Join(cg.dir, "memory.events"), "oom_group_kill")
	return int(max(n, g))
}

func (cg *cgroupV2) cpuUsage() (time.Duration, error) {
	us, err := readKey(filepath.Join(cg.dir, "cpu.stat"), "usage_usec")
	return time.Duration(us) * time.Microsecond, err
}

func (cg *cgroupV2) remove() error { return rmdirAll([]string{cg.dir}) }

func (cg *cgroupV2) dirs() []string { return []string{cg.dir} }

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
