//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
)

var errNotLinux = errors.New("needs Linux: on this system only the unsafe-process driver runs, for development")

// LinuxDriver isolates with Linux namespaces and cgroups: not on this system.
type LinuxDriver struct{ cfg Config }

// NewLinuxDriver returns a driver whose Check says it needs Linux.
func NewLinuxDriver(cfg Config) *LinuxDriver { return &LinuxDriver{cfg: cfg.withDefaults()} }

func (d *LinuxDriver) Name() string { return LinuxDriverName }
func (d *LinuxDriver) Check(ctx context.Context) error {
	return fmt.Errorf("linux driver: %w", errNotLinux)
}
func (d *LinuxDriver) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	return nil, d.Check(ctx)
}

// GVisorDriver runs sandboxes under gVisor: not on this system.
type GVisorDriver struct{ cfg Config }

// NewGVisorDriver returns a driver whose Check says it needs Linux.
func NewGVisorDriver(cfg Config) *GVisorDriver { return &GVisorDriver{cfg: cfg.withDefaults()} }

func (d *GVisorDriver) Name() string { return GVisorDriverName }
func (d *GVisorDriver) Check(ctx context.Context) error {
	return fmt.Errorf("gvisor driver: %w", errNotLinux)
}
func (d *GVisorDriver) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	return nil, d.Check(ctx)
}

// MaybeRunInit returns false: there is no sandbox init on this system.
func MaybeRunInit() bool { return false }
