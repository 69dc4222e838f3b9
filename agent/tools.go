package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Bounds of the sandbox tools.
const (
	toolOutputCap      = 64 << 10 // bytes of output a tool returns to the model
	bashDefaultTimeout = 120 * time.Second
	bashMaxTimeout     = 30 * time.Minute
)

// sandboxTool runs inside the sandbox, in the workspace.
type sandboxTool func(ctx context.Context, workspace string, input json.RawMessage) (string, error)

var sandboxTools = map[string]sandboxTool{
	"bash":  toolBash,
	"read":  toolRead,
	"write": toolWrite,
	"ls":    toolLs,
}

// runSandboxTool runs a sandbox tool by its API name.
func runSandboxTool(ctx context.Context, workspace, name string, input json.RawMessage) (string, error) {
	tool, ok := sandboxTools[name]
	if !ok {
		return "", fmt.Errorf("tool %q has no implementation in this runtime", name)
	}
	out, err := tool(ctx, workspace, input)
	return capOutput(out), err
}

func capOutput(s string) string {
	if len(s) <= toolOutputCap {
		return s
	}
	return s[:toolOutputCap] + fmt.Sprintf("\n[output truncated: %d of %d bytes shown]", toolOutputCap, len(s))
}

func decodeInput(input json.RawMessage, v any) error {
	if err := json.Unmarshal(input, v); err != nil {
		return fmt.Errorf("invalid arguments: %v", err)
	}
	return nil
}

// resolve maps a tool path to the workspace: relative paths are taken from it.
func resolve(workspace, p string) string {
	if p == "" {
		p = "."
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(workspace, p)
}

func toolBash(ctx context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Command        string `json:"command"`
		TimeoutSeconds int    `json:"timeoutSeconds"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	if strings.TrimSpace(in.Command) == "" {
		return "", errors.New("command is empty")
	}
	timeout := bashDefaultTimeout
	if in.TimeoutSeconds > 0 {
		timeout = min(time.Duration(in.TimeoutSeconds)*time.Second, bashMaxTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", in.Command)
	cmd.Dir = workspace
	cmd.Env = append(os.Environ(), "PWD="+workspace)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	out := buf.String()
	if ctx.Err() == context.DeadlineExceeded {
		return "", fmt.Errorf("%s\n[timed out after %s]", capOutput(out), timeout)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return "", fmt.Errorf("%s\n[exit code %d]", capOutput(out), exit.ExitCode())
	}
	if err != nil {
		return "", fmt.Errorf("run bash: %w", err)
	}
	return out, nil
}

func toolRead(_ context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Path   string `json:"path"`
		Offset int    `json:"offset"`
		Limit  int    `json:"limit"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	b, err := os.ReadFile(resolve(workspace, in.Path))
	if err != nil {
		return "", err
	}
	if in.Offset <= 1 && in.Limit <= 0 {
		return string(b), nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	from := max(in.Offset-1, 0)
	if from >= len(lines) {
		return "", fmt.Errorf("offset %d is past the end of the file (%d lines)", in.Offset, len(lines))
	}
	to := len(lines)
	if in.Limit > 0 {
		to = min(from+in.Limit, to)
	}
	return strings.Join(lines[from:to], ""), nil
}

func toolWrite(_ context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Path    string `json:"path"`
		Content string `json:"content"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	if in.Path == "" {
		return "", errors.New("path is empty")
	}
	p := resolve(workspace, in.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, []byte(in.Content), 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("wrote %d bytes to %s", len(in.Content), in.Path), nil
}

func toolLs(_ context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Path string `json:"path"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(resolve(workspace, in.Path))
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "\n"), nil
}
