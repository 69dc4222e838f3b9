package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Sandbox tools run inside the sandbox, in the runtime's process, on the
// workspace folder. Relative paths are taken from the workspace; absolute paths
// are allowed, because the sandbox, not the tool, is the security boundary: a
// tool may touch whatever the sandbox lets the runtime touch, and bash could do
// the same anyway.

// toolOutputCap bounds the bytes a tool returns to the model.
const toolOutputCap = 64 << 10

// sandboxTool runs inside the sandbox, in the workspace.
type sandboxTool func(ctx context.Context, workspace string, input json.RawMessage) (string, error)

var sandboxTools = map[string]sandboxTool{
	"bash":  toolBash,
	"read":  toolRead,
	"write": toolWrite,
	"edit":  toolEdit,
	"ls":    toolLs,
	"grep":  toolGrep,
	"find":  toolFind,
}

// runSandboxTool runs a sandbox tool by its API name. A tool that panics
// fails its call, not the run.
func runSandboxTool(ctx context.Context, workspace, name string, input json.RawMessage) (out string, err error) {
	tool, ok := sandboxTools[name]
	if !ok {
		return "", fmt.Errorf("tool %q has no implementation in this runtime", name)
	}
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("tool %s crashed: %v", name, p)
		}
	}()
	out, err = tool(ctx, workspace, input)
	return capOutput(out), err
}

// capOutput keeps the first toolOutputCap bytes of s, cut at a rune boundary.
func capOutput(s string) string {
	if len(s) <= toolOutputCap {
		return s
	}
	cut := toolOutputCap
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("\n[output truncated: %d of %d bytes shown]", cut, len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func decodeInput(input json.RawMessage, v any) error {
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	if err := json.Unmarshal(input, v); err != nil {
		return fmt.Errorf("invalid arguments: %v", err)
	}
	return nil
}

// resolve maps a tool path to the file system: relative paths are taken from
// the workspace, absolute paths are kept (the sandbox is the boundary).
func resolve(workspace, p string) string {
	if p == "" {
		p = "."
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(workspace, p)
}

// display names a file for the model: relative to the workspace when it is
// inside it, absolute otherwise.
func display(workspace, p string) string {
	if rel, err := filepath.Rel(workspace, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return filepath.ToSlash(rel)
	}
	return p
}
