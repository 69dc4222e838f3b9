package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// secretEnv is set in the test process, as a worker's credentials would be:
// no sandbox may see it.
const secretEnv, secretValue = "ONESHOT_ANTHROPIC_API_KEY", "secret-b7f3"

func TestMain(m *testing.M) {
	MaybeRunInit()
	if len(os.Args) > 1 && os.Args[1] == "sandbox-helper" {
		os.Exit(helper(os.Args[2:]))
	}
	os.Setenv(secretEnv, secretValue)
	goleak.VerifyTestMain(m)
}

// helper is what the test binary does when it runs inside a sandbox as its
// runtime: small probes the shell cannot make.
func helper(args []string) int {
	switch args[0] {
	case "dial": // dial ADDR: print "connected" or the error
		c, err := net.Dial("tcp", args[1])
		if err != nil {
			fmt.Println("dial error:", err)
			return 0
		}
		c.Close()
		fmt.Println("connected")
	case "loopback": // listen on 127.0.0.1 and dial it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("listen error:", err)
			return 0
		}
		defer l.Close()
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			fmt.Println("dial error:", err)
			return 0
		}
		c.Close()
		fmt.Println("loopback ok")
	case "alloc": // alloc MIB: touch that much memory, MiB by MiB
		n, _ := strconv.Atoi(args[1])
		var keep [][]byte
		for i := range n {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
	case "syscalls": // try what seccomp refuses and print each errno
		var out []string
		try := func(name string, err error) { out = append(out, name+"="+errName(err)) }
		try("unshare", syscall.Unshare(syscall.CLONE_NEWUSER))
		_, _, e := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
		try("ptrace", errnoErr(e))
		_, _, e = syscall.RawSyscall(syscall.SYS_KEYCTL, 0 /* KEYCTL_GET_KEYRING_ID */, ^uintptr(0), 0)
		try("keyctl", errnoErr(e))
		_, _, e = syscall.RawSyscall(435 /* clone3 */, 0, 0, 0)
		try("clone3", errnoErr(e))
		try("mount", syscall.Mount("none", "/tmp", "tmpfs", 0, ""))
		try("sethostname", syscall.Sethostname([]byte("x")))
		fmt.Println(strings.Join(out, " "))
	case "sh": // sh SCRIPT: run a shell as a child and wait for it
		cmd := exec.Command("/bin/sh", "-c", args[1])
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Run()
		fmt.Println("runtime survived")
		time.Sleep(time.Minute)
	case "worker": // worker DRIVER SCRIPT: create a sandbox, print its id and cgroups, block
		d, err := NewDriver(args[1], Config{Command: []string{"/bin/sh", "-c", args[2]}})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		sb, err := d.Create(context.Background(), Spec{})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		dirs := sb.(interface{ cgroupDirs() []string }).cgroupDirs()
		fmt.Println(sb.ID(), strings.Join(dirs, " "))
		select {}
	case "write-self": // the runtime binary is bound read-only
		self, _ := os.Executable()
		f, err := os.OpenFile(self, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		fmt.Println("write-self:", errName(err))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", args)
		return 2
	}
	return 0
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		switch e {
		case syscall.EPERM:
			return "EPERM"
		case syscall.ENOSYS:
			return "ENOSYS"
		case syscall.EROFS:
			return "EROFS"
		case syscall.EACCES:
			return "EACCES"
		case syscall.ETXTBSY:
			return "ETXTBSY"
		}
	}
	return err.Error()
}
