package sandbox

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Driver names, as configuration spells them and the API reports them.
const (
	LinuxDriverName  = "linux"
	GVisorDriverName = "gvisor"
)

// Config configures a driver. Zero values mean the documented defaults. The
// unsafe-process driver uses only Command and Env.
type Config struct {
	// Command is the runtime: its binary (an absolute path, or a name looked up
	// in PATH) and arguments, e.g. ["/usr/local/bin/oneshot", "agent"]. Required.
	// The binary is bound read-only into the sandbox and executed there.
	Command []string

	// Init is the binary the linux driver executes first in each sandbox, to
	// build it around itself before it executes Command: any binary that links
	// package internal/sandboxinit (oneshot, or the smaller and faster
	// oneshot-runtime). Default: this process's own binary.
	Init string

	// Env adds KEY=value variables to the runtime's environment. Without it the
	// runtime sees only PATH, HOME, TMPDIR, LANG and ONESHOT_WORKSPACE: never the
	// worker's own environment, so no credential leaks in by accident.
	Env []string

	// WorkspaceMiB bounds /workspace, a tmpfs whose pages count against the
	// sandbox's memory limit. Default 1024. (gVisor ignores the size: there only
	// the memory limit bounds it.)
	WorkspaceMiB int

	// TmpMiB bounds /tmp, a tmpfs like /workspace. Default 256.
	TmpMiB int

	// PidsMax bounds the processes and threads of one sandbox, so a fork bomb
	// stays inside. Default 256. The gvisor driver adds GVisorPidsOverhead for
	// the threads of gVisor itself.
	PidsMax int

	// CgroupRoot is the cgroup under which every sandbox gets its own, as a path
	// from the root of the cgroup hierarchy (v2), or of each controller's
	// hierarchy (v1). Default "/oneshot". On cgroup v2 it must be a cgroup that
	// may have children with the memory, cpu and pids controllers: the host's
	// root hierarchy when the worker runs as root, otherwise a delegated one.
	CgroupRoot string

	// StartTimeout bounds the start of one sandbox (the gVisor boot included).
	// Default 10s.
	StartTimeout time.Duration

	// Runsc is gVisor's runsc binary (gvisor only). Default "runsc" from PATH.
	Runsc string

	// RunscPlatform is gVisor's platform (gvisor only). Default "ptrace", which
	// works everywhere; "systrap" or "kvm" are faster where supported.
	RunscPlatform string

	// RunscRoot is the folder for runsc's container state (gvisor only).
	// Default "/run/oneshot-runsc". Each sandbox's state is removed with it.
	RunscRoot string

	// Logger receives the drivers' warnings. Default slog.Default().
	Logger *slog.Logger
}

// GVisorPidsOverhead is what the gvisor driver adds to PidsMax: the threads of
// the gVisor kernel, gofer and runsc count in the same cgroup.
const GVisorPidsOverhead = 128

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	c.WorkspaceMiB = cmp.Or(c.WorkspaceMiB, DefaultWorkspaceMiB)
	c.TmpMiB = cmp.Or(c.TmpMiB, DefaultTmpMiB)
	c.PidsMax = cmp.Or(c.PidsMax, DefaultPidsMax)
	c.CgroupRoot = cmp.Or(c.CgroupRoot, DefaultCgroupRoot)
	c.StartTimeout = cmp.Or(c.StartTimeout, 10*time.Second)
	c.Init = cmp.Or(c.Init, "/proc/self/exe")
	c.Runsc = cmp.Or(c.Runsc, "runsc")
	c.RunscPlatform = cmp.Or(c.RunscPlatform, "ptrace")
	c.RunscRoot = cmp.Or(c.RunscRoot, "/run/oneshot-runsc")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if len(c.Command) == 0 || c.Command[0] == "" {
		errs = append(errs, errors.New("sandbox command: required (the runtime, e.g. [/usr/local/bin/oneshot agent])"))
	}
	for _, kv := range c.Env {
		if !strings.Contains(kv, "=") {
			errs = append(errs, fmt.Errorf("sandbox env %q: want KEY=value", kv))
		}
	}
	if c.WorkspaceMiB < 0 || c.TmpMiB < 0 || c.PidsMax < 0 || c.StartTimeout < 0 {
		errs = append(errs, errors.New("sandbox sizes: must not be negative"))
	}
	if c.CgroupRoot != "" && !strings.HasPrefix(c.CgroupRoot, "/") {
		errs = append(errs, fmt.Errorf("sandbox cgroup root %q: want an absolute path such as /oneshot", c.CgroupRoot))
	}
	return errors.Join(errs...)
}

// NewDriver returns the driver of the given name: "linux" (also for ""),
// "gvisor" or "unsafe-process".
func NewDriver(name string, cfg Config) (Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cmp.Or(name, LinuxDriverName) {
	case LinuxDriverName:
		return NewLinuxDriver(cfg), nil
	case GVisorDriverName:
		return NewGVisorDriver(cfg), nil
	case ProcessDriverName:
		return &ProcessDriver{Command: cfg.Command, Env: cfg.Env}, nil
	default:
		return nil, fmt.Errorf("sandbox driver %q: unknown; want %s, %s or %s",
			name, LinuxDriverName, GVisorDriverName, ProcessDriverName)
	}
}
