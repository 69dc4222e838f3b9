package systemtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/oneshot-dev/oneshot/internal/system"
)

// Build builds the oneshot binaries into dir as `make build` lays them out:
// oneshot and, beside it, oneshot-runtime. It returns the path of oneshot.
func Build(dir string) (string, error) {
	oneshot := filepath.Join(dir, "oneshot")
	if err := goBuild(oneshot, "github.com/oneshot-dev/oneshot/cmd/oneshot"); err != nil {
		return "", err
	}
	if _, err := BuildRuntime(dir); err != nil {
		return "", err
	}
	return oneshot, nil
}

// MainWithBinaries builds the binaries into a temporary folder as Build
// does, sets *binary to oneshot's path, runs the tests and removes the
// folder. Call it from TestMain.
func MainWithBinaries(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "oneshot-bin-")
	if err != nil {
		panic(err)
	}
	if *binary, err = Build(dir); err != nil {
		os.RemoveAll(dir)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// BuildRuntime builds oneshot-runtime into dir and returns its path.
func BuildRuntime(dir string) (string, error) {
	runtime := filepath.Join(dir, system.RuntimeBinary)
	return runtime, goBuild(runtime, "github.com/oneshot-dev/oneshot/cmd/oneshot-runtime")
}

func goBuild(out, pkg string) error {
	build := exec.Command("go", "build", "-o", out, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}
