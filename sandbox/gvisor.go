//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/oneshot-dev/oneshot/internal/sandboxinit"
)

// GVisorDriver runs each runtime under gVisor (runsc): a user-space kernel
// between the runtime and the host, with no network but loopback, the same
// file system plan and cgroup limits as the linux driver, uid 65534 and no
// capabilities. It needs root.
type GVisorDriver struct {
	cfg Config

	once     sync.Once
	setupErr error
	runsc    string
	cgroups  cgroupHost
	root     *sandboxinit.Rootfs
}

// NewGVisorDriver returns the gvisor driver. Its setup happens on first use.
func NewGVisorDriver(cfg Config) *GVisorDriver {
	return &GVisorDriver{cfg: cfg.withDefaults()}
}

func (d *GVisorDriver) Name() string { return GVisorDriverName }

func (d *GVisorDriver) setup() error {
	d.once.Do(func() {
		d.setupErr = func() error {
			if err := d.cfg.Validate(); err != nil {
				return err
			}
			var err error
			if d.runsc, err = exec.LookPath(d.cfg.Runsc); err != nil {
				return fmt.Errorf("runsc not found (%w): install gVisor (Debian: apt install runsc; "+
					"or https://gvisor.dev/docs/user_guide/install/) or set its path in the Runsc setting", err)
			}
			if os.Geteuid() != 0 {
				return errors.New("runsc needs root here: run the worker as root, or use the linux driver")
			}
			if err := os.MkdirAll(d.cfg.RunscRoot, 0o700); err != nil {
				return fmt.Errorf("runsc state folder: %w", err)
			}
			if d.cgroups, err = newCgroupHost(d.cfg.CgroupRoot); err != nil {
				return err
			}
			if err := d.cgroups.prepare(); err != nil {
				return err
			}
			if n := sweep(d.cgroups.roots()); n > 0 {
				d.cfg.Logger.Warn("sandbox: removed cgroups a dead worker left", "count", n)
			}
			d.root, err = newRootfs(d.cfg, d.cfg.Command)
			return err
		}()
	})
	return d.setupErr
}

// Check starts one sandbox running /usr/bin/true under runsc.
func (d *GVisorDriver) Check(ctx context.Context) error {
	if err := d.setup(); err != nil {
		return fmt.Errorf("gvisor driver: %w", err)
	}
	plan, err := newRootfs(d.cfg, []string{"/usr/bin/true"})
	if err != nil {
		return fmt.Errorf("gvisor driver: %w", err)
	}
	s, err := d.start(ctx, Spec{CPU: 1, MemoryMiB: 256}, plan)
	if err != nil {
		return fmt.Errorf("gvisor driver (runsc --platform=%s): %w", d.cfg.RunscPlatform, err)
	}
	exit := s.Wait()
	if err := s.Destroy(); err != nil {
		return fmt.Errorf("gvisor driver: %w", err)
	}
	if exit.Code != 0 {
		return fmt.Errorf("gvisor driver: a trial sandbox running /usr/bin/true ended with %s", exit)
	}
	return nil
}

func (d *GVisorDriver) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	if err := d.setup(); err != nil {
		return nil, fmt.Errorf("gvisor driver: %w", err)
	}
	s, err := d.start(ctx, spec, d.root)
	if err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	return s, nil
}

// start creates the cgroup and the OCI bundle, starts `runsc run`, and waits
// until runsc reports the container running.
func (d *GVisorDriver) start(ctx context.Context, spec Spec, plan *sandboxinit.Rootfs) (*gvisorSandbox, error) {
	spec = spec.WithDefaults()
	s := &gvisorSandbox{child: newChild(spec), runsc: d.runsc, stateRoot: d.cfg.RunscRoot}
	var err error
	l := limits{cpu: spec.CPU, memoryMiB: spec.MemoryMiB, pidsMax: d.cfg.PidsMax + GVisorPidsOverhead}
	if s.cg, err = d.cgroups.create(s.id, l); err != nil {
		return nil, err
	}
	if s.bundle, err = os.MkdirTemp("", "oneshot-gvisor-"+s.id+"-"); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := writeBundle(s.bundle, plan, filepath.Join(d.cfg.CgroupRoot, s.id)); err != nil {
		s.cleanup()
		return nil, err
	}
	if s.stdio, err = newStdio(); err != nil {
		s.cleanup()
		return nil, err
	}
	s.cmd = exec.Command(d.runsc, "--root="+d.cfg.RunscRoot, "--platform="+d.cfg.RunscPlatform,
		"--network=none", "run", "--bundle", s.bundle, s.id)
	s.cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = s.stdio.child[0], s.stdio.child[1], s.stdio.child[2]
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = s.cmd.Start()
	s.stdio.closeChild()
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("start runsc: %w", err)
	}
	go s.wait(runscExit)

	deadline := time.Now().Add(d.cfg.StartTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !s.running() {
		select {
		case <-tick.C:
			if time.Now().After(deadline) {
				s.Destroy()
				return nil, fmt.Errorf("runsc did not start the container within %s (StartTimeout)", d.cfg.StartTimeout)
			}
		case <-s.done:
			s.Destroy()
			return nil, fmt.Errorf("runsc ended before the container ran: %s", s.exit)
		case <-ctx.Done():
			s.Destroy()
			return nil, ctx.Err()
		}
	}
	return s, nil
}

// gvisorSandbox is one `runsc run` and the gVisor sandbox it started.
type gvisorSandbox struct {
	child
	runsc     string
	stateRoot string
	bundle    string
}

// runscExit reads runsc's report of a container killed by signal N, exit
// code 128+N, as that signal.
func runscExit(exit Exit) Exit {
	if exit.Code > 128 && exit.Code <= 128+64 {
		return Exit{Code: -1, Signal: syscall.Signal(exit.Code - 128).String()}
	}
	return exit
}

// stateFiles are runsc's files for this container.
func (s *gvisorSandbox) stateFiles() []string {
	files, _ := filepath.Glob(filepath.Join(s.stateRoot, "*"+s.id+"*"))
	return files
}

// running says whether runsc has marked the container running.
func (s *gvisorSandbox) running() bool {
	for _, f := range s.stateFiles() {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(`"status":"running"`)) {
			return true
		}
	}
	return false
}

// Destroy kills the gVisor sandbox and gofer through the cgroup; `runsc run`
// then ends and removes its state. What it leaves, `runsc delete` removes.
func (s *gvisorSandbox) Destroy() error {
	s.destroy.Do(func() {
		errs := []error{s.cg.kill()}
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		if len(s.stateFiles()) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := exec.CommandContext(ctx, s.runsc, "--root="+s.stateRoot, "delete", "-force", s.id).CombinedOutput()
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("runsc delete: %w: %s", err, bytes.TrimSpace(out)))
			}
		}
		errs = append(errs, s.cg.kill(), s.stdio.close(), os.RemoveAll(s.bundle), s.cg.remove())
		s.destroyErr = errors.Join(errs...)
	})
	return s.destroyErr
}

// cleanup undoes a start that failed before runsc ran.
func (s *gvisorSandbox) cleanup() {
	if s.stdio != nil {
		s.stdio.close()
	}
	if s.bundle != "" {
		os.RemoveAll(s.bundle)
	}
	s.cg.remove()
}

func (s *gvisorSandbox) cpuUsage() (time.Duration, error) { return s.cg.cpuUsage() }
func (s *gvisorSandbox) cgroupDirs() []string             { return s.cg.dirs() }
