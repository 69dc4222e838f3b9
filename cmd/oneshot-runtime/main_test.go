package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The runtime binary starts fast because it links the runtime and the sandbox
// init only, none of the server's packages: this keeps it so.
func TestLinksOnlyTheRuntime(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/oneshot-dev/oneshot/agent":                true,
		"github.com/oneshot-dev/oneshot/chat":                 true,
		"github.com/oneshot-dev/oneshot/internal/sandboxinit": true,
		"github.com/oneshot-dev/oneshot/cmd/oneshot-runtime":  true,
		"golang.org/x/sys/unix":                               true,
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages: %q", len(deps), out)
	}
	for _, dep := range deps {
		standard := !strings.Contains(strings.Split(dep, "/")[0], ".")
		if !standard && !allowed[dep] {
			t.Errorf("oneshot-runtime links %s: the runtime binary must stay free of server packages", dep)
		}
	}
}
