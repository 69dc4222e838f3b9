package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// ProcessDriverName is the name of the driver that does not isolate. It says so
// on purpose: it exists for development on hosts without namespaces, and is never
// chosen unless configured by that name.
const ProcessDriverName = "unsafe-process"

// ProcessDriver runs the runtime as a plain child process of the worker, in a
// temporary working folder, with an empty environment. It gives no isolation.
type ProcessDriver struct {
	Command []string // the runtime: path and arguments
	Env     []string // added to the runtime's otherwise empty environment
}

func (d *ProcessDriver) Name() string { return ProcessDriverName }

func (d *ProcessDriver) Check(ctx context.Context) error {
	if len(d.Command) == 0 {
		return errors.New("unsafe-process driver: no runtime command configured")
	}
	if _, err := exec.LookPath(d.Command[0]); err != nil {
		return fmt.Errorf("unsafe-process driver: runtime binary: %w", err)
	}
	return nil
}

func (d *ProcessDriver) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &process{child: newChild(spec.WithDefaults())}
	dir, err := os.MkdirTemp("", "oneshot-"+p.id+"-")
	if err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	p.dir = dir
	cmd := exec.Command(d.Command[0], d.Command[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin", "ONESHOT_WORKSPACE=" + dir}, d.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd = cmd
	s, err := newStdio()
	if err != nil {
		return nil, p.fail(err)
	}
	p.stdio = s
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.child[0], s.child[1], s.child[2]
	err = cmd.Start()
	s.closeChild()
	if err != nil {
		s.close()
		return nil, p.fail(fmt.Errorf("start runtime: %w", err))
	}
	go p.wait(nil)
	return p, nil
}

// process is a runtime in its working folder (dir), with no cgroup.
type process struct {
	child
	dir string
}

func (p *process) fail(err error) error {
	os.RemoveAll(p.dir)
	return err
}

func (p *process) Destroy() error {
	p.destroy.Do(func() {
		// The whole process group: the runtime and whatever its tools started.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		p.stdio.close()
		os.RemoveAll(p.dir)
	})
	return nil
}

// exitOf turns a finished process state into an Exit.
func exitOf(ps *os.ProcessState, err error) Exit {
	if ps == nil {
		return Exit{Code: -1, Signal: fmt.Sprint(err)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal().String()}
	}
	return Exit{Code: ps.ExitCode()}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new sandbox id, "sbx_" and 16 random characters.
func NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return "sbx_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
