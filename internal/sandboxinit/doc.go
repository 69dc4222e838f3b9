// Package sandboxinit is the init of a linux sandbox: the first process in the
// sandbox's namespaces. It builds the root file system from a plan (Rootfs),
// brings up loopback, drops to uid 65534 without capabilities, sets
// no_new_privs and a seccomp filter, and executes the runtime.
//
// The linux driver starts it by re-executing the current binary with argv[0]
// Arg and the environment variable Env set. This package's initializer then
// runs it, before the packages that do not depend on this one initialize: in a
// server binary those cost milliseconds per sandbox. So this package depends
// on the standard library and golang.org/x/sys only; keep it that way.
package sandboxinit
