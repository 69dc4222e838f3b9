//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oneshot-dev/oneshot/internal/sandboxinit"
)

// LinuxDriver isolates each runtime with Linux namespaces (PID, mount, network,
// UTS, IPC, cgroup; user too when not root), a fresh read-only root, cgroup
// limits, uid 65534 without capabilities, no_new_privs and a seccomp filter.
// See the package documentation for what its callers must do.
type LinuxDriver struct {
	cfg Config

	once     sync.Once
	setupErr error
	cgroups  cgroupHost
	plan     []byte // the init's config for cfg.Command, the same for every sandbox

	noCloneInto atomic.Bool // the kernel cannot clone into a cgroup
}

// NewLinuxDriver returns the linux driver. Its setup happens on first use.
func NewLinuxDriver(cfg Config) *LinuxDriver {
	return &LinuxDriver{cfg: cfg.withDefaults()}
}

func (d *LinuxDriver) Name() string { return LinuxDriverName }

func (d *LinuxDriver) setup() error {
	d.once.Do(func() {
		if d.setupErr = d.cfg.Validate(); d.setupErr != nil {
			return
		}
		if d.cgroups, d.setupErr = newCgroupHost(d.cfg.CgroupRoot); d.setupErr != nil {
			return
		}
		if d.setupErr = d.cgroups.prepare(); d.setupErr != nil {
			return
		}
		if n := sweep(d.cgroups.roots()); n > 0 {
			d.cfg.Logger.Warn("sandbox: removed cgroups a dead worker left", "count", n)
		}
		d.plan, d.setupErr = initConfig(d.cfg, d.cfg.Command)
	})
	return d.setupErr
}

// Check starts one sandbox running /usr/bin/true and says what keeps it from
// working, if anything does.
func (d *LinuxDriver) Check(ctx context.Context) error {
	if err := d.setup(); err != nil {
		return fmt.Errorf("linux driver: %w", err)
	}
	plan, err := initConfig(d.cfg, []string{"/usr/bin/true"})
	if err != nil {
		return fmt.Errorf("linux driver: %w", err)
	}
	s, err := d.start(ctx, Spec{CPU: 0.5, MemoryMiB: 64}, plan)
	if err != nil {
		return fmt.Errorf("linux driver: %w", err)
	}
	exit := s.Wait()
	if err := s.Destroy(); err != nil {
		return fmt.Errorf("linux driver: %w", err)
	}
	if exit.Code != 0 {
		return fmt.Errorf("linux driver: a trial sandbox running /usr/bin/true ended with %s", exit)
	}
	return nil
}

func (d *LinuxDriver) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	if err := d.setup(); err != nil {
		return nil, fmt.Errorf("linux driver: %w", err)
	}
	s, err := d.start(ctx, spec, d.plan)
	if err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	return s, nil
}

// start creates the cgroup, starts the init in new namespaces, moves it into
// the cgroup (v1), hands it its plan, and waits until it has executed the runtime.
func (d *LinuxDriver) start(ctx context.Context, spec Spec, plan []byte) (*linuxSandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	spec = spec.WithDefaults()
	s := &linuxSandbox{child: newChild(spec)}
	var err error
	if s.cg, err = d.cgroups.create(s.id, limits{cpu: spec.CPU, memoryMiB: spec.MemoryMiB, pidsMax: d.cfg.PidsMax}); err != nil {
		return nil, err
	}
	if s.stdio, err = newStdio(); err != nil {
		s.cg.remove()
		return nil, err
	}
	configR, configW, err := os.Pipe()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	defer configW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		configR.Close()
		s.cleanup()
		return nil, err
	}
	defer statusR.Close()

	// On cgroup v2 the init is cloned straight into its cgroup; on v1 it is
	// moved there before it reads its config.
	attr := namespaces()
	if v2, ok := s.cg.(*cgroupV2); ok && !d.noCloneInto.Load() {
		if dir, err := os.Open(v2.dir); err == nil {
			defer dir.Close()
			attr.UseCgroupFD, attr.CgroupFD = true, int(dir.Fd())
		}
	}
	s.cmd = d.initCmd(s.stdio, configR, statusW, attr)
	err = s.cmd.Start()
	if err != nil && attr.UseCgroupFD {
		// clone3 with CLONE_INTO_CGROUP needs Linux 5.7: move the init instead.
		d.noCloneInto.Store(true)
		attr.UseCgroupFD = false
		s.cmd = d.initCmd(s.stdio, configR, statusW, attr)
		err = s.cmd.Start()
	}
	configR.Close()
	statusW.Close()
	s.stdio.closeChild()
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("cannot create namespaces (%w): run the worker as root, or allow user "+
			"namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, "+
			"kernel.apparmor_restrict_unprivileged_userns); in a container, allow unshare/clone "+
			"(CAP_SYS_ADMIN or a seccomp profile that permits them), or use the gvisor driver", err)
	}
	go s.wait(nil)
	if !attr.UseCgroupFD {
		if err := s.cg.add(s.cmd.Process.Pid); err != nil {
			return nil, s.abort(err)
		}
	}
	if _, err := configW.Write(plan); err != nil {
		return nil, s.abort(fmt.Errorf("send init config: %w", err))
	}
	configW.Close()

	deadline := time.Now().Add(d.cfg.StartTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	statusR.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { statusR.SetReadDeadline(time.Now()) })
	status, err := io.ReadAll(statusR)
	stop()
	switch {
	case err == nil && string(status) == string(sandboxinit.Alive):
		return s, nil // the status pipe closed on exec: the runtime runs
	case ctx.Err() != nil:
		err = ctx.Err()
	case err != nil:
		err = fmt.Errorf("sandbox init did not finish in time (StartTimeout %s): %w", d.cfg.StartTimeout, err)
	case len(status) == 0:
		err = errors.New("sandbox init ended before it started its work")
	default:
		err = fmt.Errorf("sandbox init: %s", status[1:])
	}
	return nil, s.abort(err)
}

// abort ends a sandbox whose start failed, and adds what its init wrote to
// stderr, if anything, to the error.
func (s *linuxSandbox) abort(err error) error {
	s.cmd.Process.Kill()
	<-s.done
	s.stdio.stderr.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	diag, _ := io.ReadAll(io.LimitReader(s.stdio.stderr, 4096))
	if diag = bytes.TrimSpace(diag); len(diag) > 0 {
		err = fmt.Errorf("%w (stderr: %s)", err, diag)
	}
	s.Destroy()
	return err
}

// initCmd is the command that starts the init: Config.Init, by default this
// binary again.
func (d *LinuxDriver) initCmd(pipes *stdio, config, status *os.File, attr *syscall.SysProcAttr) *exec.Cmd {
	return &exec.Cmd{
		Path: d.cfg.Init,
		// -test.run keeps a test binary that somehow missed the init from running its tests.
		Args:        []string{sandboxinit.Arg, "-test.run=^$"},
		Env:         []string{sandboxinit.Env + "=1"},
		Stdin:       pipes.child[0],
		Stdout:      pipes.child[1],
		Stderr:      pipes.child[2],
		ExtraFiles:  []*os.File{config, status}, // fds 3 and 4
		SysProcAttr: attr,
	}
}

// initConfig plans the sandbox for a command and encodes it for the init.
func initConfig(cfg Config, command []string) ([]byte, error) {
	plan, err := newRootfs(cfg, command)
	if err != nil {
		return nil, err
	}
	return sandboxinit.Config{Root: plan, UserNS: os.Geteuid() != 0}.MarshalText()
}

// namespaces are the namespaces the init starts in. As root, the init is
// root in them until it drops to 65534; otherwise a user namespace maps 65534
// to the worker's uid and the init gets only the capabilities it needs.
func namespaces() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		Pdeathsig: syscall.SIGKILL,
	}
	if os.Geteuid() != 0 {
		const capSetpcap, capNetAdmin, capSysAdmin = 8, 12, 21
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: sandboxinit.UID, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: sandboxinit.GID, HostID: os.Getegid(), Size: 1}}
		attr.AmbientCaps = []uintptr{capSetpcap, capNetAdmin, capSysAdmin}
	}
	return attr
}

// linuxSandbox is one runtime in its namespaces and cgroup.
type linuxSandbox struct {
	child
}

// Destroy kills the runtime, which is PID 1 of the sandbox's PID namespace, so
// the kernel kills every other process of it; kills whatever is left in the
// cgroup; and removes the cgroup. Mounts vanish with the mount namespace.
func (s *linuxSandbox) Destroy() error {
	s.destroy.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
		killErr := s.cg.kill()
		s.destroyErr = errors.Join(killErr, s.stdio.close(), s.cg.remove())
	})
	return s.destroyErr
}

// cleanup undoes a start that failed before the init ran.
func (s *linuxSandbox) cleanup() {
	s.stdio.close()
	s.cg.remove()
}

// cpuUsage is the CPU time the sandbox has used, from its cgroup.
func (s *linuxSandbox) cpuUsage() (time.Duration, error) { return s.cg.cpuUsage() }

// cgroupDirs are the sandbox's cgroup folders on the host.
func (s *linuxSandbox) cgroupDirs() []string { return s.cg.dirs() }
