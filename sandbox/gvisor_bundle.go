//go:build linux

package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/oneshot-dev/oneshot/internal/sandboxinit"
)

// The parts of an OCI runtime spec (config.json) the gvisor driver writes.
type ociSpec struct {
	OCIVersion string     `json:"ociVersion"`
	Process    ociProcess `json:"process"`
	Root       ociRoot    `json:"root"`
	Hostname   string     `json:"hostname"`
	Mounts     []ociMount `json:"mounts"`
	Linux      ociLinux   `json:"linux"`
}

type ociProcess struct {
	User            ociUser         `json:"user"`
	Args            []string        `json:"args"`
	Env             []string        `json:"env"`
	Cwd             string          `json:"cwd"`
	NoNewPrivileges bool            `json:"noNewPrivileges"`
	Capabilities    ociCapabilities `json:"capabilities"`
}

type ociUser struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

type ociCapabilities struct {
	Bounding    []string `json:"bounding"`
	Effective   []string `json:"effective"`
	Inheritable []string `json:"inheritable"`
	Permitted   []string `json:"permitted"`
	Ambient     []string `json:"ambient"`
}

type ociRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options,omitempty"`
}

type ociLinux struct {
	Namespaces  []ociNamespace `json:"namespaces"`
	CgroupsPath string         `json:"cgroupsPath"`
}

type ociNamespace struct {
	Type string `json:"type"`
}

// writeBundle writes an OCI bundle for the plan: rootfs/ holds the plan's own
// files and links and the mount points; config.json mounts the rest. The
// cgroup at cgroupsPath exists already, with its limits: runsc joins it.
func writeBundle(dir string, plan *sandboxinit.Rootfs, cgroupsPath string) error {
	rootDir := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := plan.MountPoints(rootDir, false); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	spec := ociSpec{
		OCIVersion: "1.0.2",
		Process: ociProcess{
			User:            ociUser{UID: sandboxinit.UID, GID: sandboxinit.GID},
			Args:            append([]string{plan.Path}, plan.Argv[1:]...),
			Env:             plan.Env,
			Cwd:             sandboxinit.Workspace,
			NoNewPrivileges: true,
			Capabilities:    ociCapabilities{Bounding: []string{}, Effective: []string{}, Inheritable: []string{}, Permitted: []string{}, Ambient: []string{}},
		},
		Root:     ociRoot{Path: rootDir, Readonly: true},
		Hostname: sandboxinit.Hostname,
		Mounts:   []ociMount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: ociLinux{
			Namespaces:  []ociNamespace{{"pid"}, {"network"}, {"ipc"}, {"uts"}, {"mount"}},
			CgroupsPath: cgroupsPath,
		},
	}
	for _, b := range plan.Binds {
		if !b.Device { // gVisor has its own /dev
			spec.Mounts = append(spec.Mounts, ociMount{Destination: b.Target, Type: "bind", Source: b.Source, Options: []string{"rbind", "ro"}})
		}
	}
	for _, t := range plan.Tmpfs {
		opts := []string{"nosuid", "nodev", "mode=" + t.Mode, fmt.Sprintf("size=%dm", t.SizeMiB)}
		if t.Owned {
			opts = append(opts, fmt.Sprintf("uid=%d", sandboxinit.UID), fmt.Sprintf("gid=%d", sandboxinit.GID))
		}
		spec.Mounts = append(spec.Mounts, ociMount{Destination: t.Path, Type: "tmpfs", Source: "tmpfs", Options: opts})
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}
