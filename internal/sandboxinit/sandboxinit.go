//go:build linux

package sandboxinit

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// How the driver starts the init: the current binary, re-executed with argv[0]
// Arg and Env=1, reads a Config from fd ConfigFd and reports on fd StatusFd:
// Alive first, then an error message if it fails. The status pipe closes,
// with nothing more, when the runtime has been executed.
const (
	Arg      = "oneshot-sandbox-init"
	Env      = "_ONESHOT_SANDBOX_INIT"
	ConfigFd = 3
	StatusFd = 4
	Alive    = 'I'
)

// Inside every sandbox.
const (
	UID       = 65534 // nobody
	GID       = 65534 // nogroup
	Hostname  = "sandbox"
	Workspace = "/workspace"
)

func init() {
	if IsInit() {
		Run()
	}
}

// IsInit says whether this process was started as a sandbox init.
func IsInit() bool {
	return os.Getenv(Env) == "1" && len(os.Args) > 0 && os.Args[0] == Arg
}

// Run runs the init. It never returns: it executes the runtime, or exits
// after reporting why it could not.
func Run() {
	// Credentials, capabilities, no_new_privs and seccomp are set on this
	// thread only: it is the one that executes the runtime, and execve ends
	// every other thread.
	runtime.LockOSThread()
	status := os.NewFile(StatusFd, "init-status")
	status.Write([]byte{Alive})
	err := run()
	fmt.Fprintf(status, "%v", err)
	os.Exit(1)
}

func run() error {
	// Reading the config also waits for the driver to move us into the cgroup.
	f := os.NewFile(ConfigFd, "init-config")
	text, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("read init config: %w", err)
	}
	var cfg Config
	if err := cfg.UnmarshalText(text); err != nil {
		return err
	}
	if _, err := unix.FcntlInt(StatusFd, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("status fd: %w", err)
	}
	// A cgroup namespace rooted at the sandbox's own cgroup hides the host's names.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("cgroup namespace: %w", err)
	}
	if err := cfg.Root.mount(); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(Hostname)); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := dropPrivileges(cfg.UserNS); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := installSeccomp(); err != nil {
		return err
	}
	err = unix.Exec(cfg.Root.Path, cfg.Root.Argv, cfg.Root.Env)
	return fmt.Errorf("execute runtime %s: %w", cfg.Root.Path, err)
}
