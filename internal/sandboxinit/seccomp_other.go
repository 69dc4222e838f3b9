//go:build linux && !amd64 && !arm64

package sandboxinit

// No filter is written for this architecture: the linux driver refuses to start.
const (
	auditArch = 0
	x32Bit    = 0
)

var seccompDeniedArch []uintptr
