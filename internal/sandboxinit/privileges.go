//go:build linux

package sandboxinit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// loopbackUp brings up lo, the only interface of the sandbox's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// dropPrivileges makes the calling thread uid and gid 65534, without
// supplementary groups and without any capability, now or after exec.
//
// The system calls are raw, for this thread alone: Go's Setresuid would stop
// the world to change every thread, which costs more than the rest of the init
// together, and the other threads end at execve anyway.
func dropPrivileges(userNS bool) error {
	// The bounding set limits what any later exec could gain.
	for c := 0; c <= 63; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err == unix.EINVAL {
			break
		} else if err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if !userNS { // in a user namespace the driver mapped only 65534, and we are it
		for _, call := range []struct {
			name    string
			trap    uintptr
			a, b, c uintptr
		}{
			{"setgroups", unix.SYS_SETGROUPS, 0, 0, 0},
			{"setresgid", unix.SYS_SETRESGID, GID, GID, GID},
			{"setresuid", unix.SYS_SETRESUID, UID, UID, UID},
		} {
			if _, _, e := unix.RawSyscall(call.trap, call.a, call.b, call.c); e != 0 {
				return fmt.Errorf("%s: %w", call.name, e)
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	// A change of credentials clears the parent-death signal: set it again, so
	// the sandbox dies with the worker.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	return nil
}
