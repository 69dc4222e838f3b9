//go:build linux

package sandbox

import "github.com/oneshot-dev/oneshot/internal/sandboxinit"

// MaybeRunInit runs the sandbox init when this process is one, and otherwise
// returns false at once.
//
// The init already runs on its own, from the initializer of a package this
// one imports, before the heavier packages of the binary initialize; so in a
// binary that imports package sandbox, MaybeRunInit always returns false.
// Calling it first thing in main and TestMain keeps the wiring explicit and
// costs nothing. In an init it never returns: it executes the runtime, or
// exits after reporting why it could not.
func MaybeRunInit() bool {
	if !sandboxinit.IsInit() {
		return false
	}
	sandboxinit.Run()
	return true
}
