package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tool runs a sandbox tool with a JSON input in ws.
func tool(t *testing.T, ws, name, input string) (string, error) {
	t.Helper()
	return runSandboxTool(context.Background(), ws, name, json.RawMessage(input))
}

func writeFile(t *testing.T, ws, name, content string) {
	t.Helper()
	p := filepath.Join(ws, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func TestEveryCatalogSandboxToolIsImplemented(t *testing.T) {
	for _, spec := range Catalog {
		if spec.Host {
			continue
		}
		_, ok := sandboxTools[spec.Name]
		require.True(t, ok, "sandbox tool %s has no implementation", spec.Name)
		require.True(t, json.Valid(spec.Schema), spec.Name)
	}
}

func TestEdit(t *testing.T) {
	ws := t.TempDir()
	writeFile(t, ws, "a.go", "package a\n\nfunc A() int { return 1 }\nfunc B() int { return 1 }\n")
	require.NoError(t, os.Chmod(filepath.Join(ws, "a.go"), 0o600))

	for _, tc := range []struct {
		name, input, wantErr string
	}{
		{"not found", `{"path":"a.go","oldText":"return 2","newText":"x"}`, "oldText not found in a.go"},
		{"twice", `{"path":"a.go","oldText":"return 1","newText":"return 2"}`, "oldText found 2 times in a.go: give more context"},
		{"empty old text", `{"path":"a.go","oldText":"","newText":"x"}`, "oldText is empty"},
		{"same text", `{"path":"a.go","oldText":"A","newText":"A"}`, "nothing to change"},
		{"no file", `{"path":"b.go","oldText":"x","newText":"y"}`, "no such file"},
		{"folder", `{"path":".","oldText":"x","newText":"y"}`, "is a folder"},
		{"bad input", `{"path":1}`, "invalid arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tool(t, ws, "edit", tc.input)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	out, err := tool(t, ws, "edit", `{"path":"a.go","oldText":"func B() int { return 1 }","newText":"func B() int {\n\treturn 2\n}"}`)
	require.NoError(t, err)
	require.Equal(t, "edited a.go: replaced 1 lines with 3 lines at line 4", out)
	b, err := os.ReadFile(filepath.Join(ws, "a.go"))
	require.NoError(t, err)
	require.Equal(t, "package a\n\nfunc A() int { return 1 }\nfunc B() int {\n\treturn 2\n}\n", string(b))
	fi, err := os.Stat(filepath.Join(ws, "a.go"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "edit keeps the file's mode")
}

func TestRead(t *testing.T) {
	ws := t.TempDir()
	writeFile(t, ws, "f.txt", "one\ntwo\nthree\nfour")

	for _, tc := range []struct {
		name, input, want, wantErr string
	}{
		{name: "whole", input: `{"path":"f.txt"}`, want: "one\ntwo\nthree\nfour"},
		{name: "absolute", input: `{"path":"` + filepath.Join(ws, "f.txt") + `"}`, want: "one\ntwo\nthree\nfour"},
		{name: "range", input: `{"path":"f.txt","offset":2,"limit":2}`, want: "two\nthree\n"},
		{name: "to the end", input: `{"path":"f.txt","offset":3}`, want: "three\nfour"},
		{name: "numbers", input: `{"path":"f.txt","offset":3,"lineNumbers":true}`, want: "     3\tthree\n     4\tfour"},
		{name: "past the end", input: `{"path":"f.txt","offset":9}`, wantErr: "offset 9 is past the end of the file (4 lines)"},
		{name: "missing", input: `{"path":"nope.txt"}`, wantErr: "no such file"},
		{name: "folder", input: `{"path":"."}`, wantErr: "is a folder"},
		{name: "no path", input: `{}`, wantErr: "path is empty"},
		{name: "device", input: `{"path":"/dev/null"}`, wantErr: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tool(t, ws, "read", tc.input)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, out)
		})
	}

	t.Run("binary", func(t *testing.T) {
		writeFile(t, ws, "bin", "ELF\x00\x01\x02")
		_, err := tool(t, ws, "read", `{"path":"bin"}`)
		require.ErrorContains(t, err, "binary file")
	})
	t.Run("big", func(t *testing.T) {
		var b strings.Builder
		for i := 1; i <= 20000; i++ {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		writeFile(t, ws, "big.txt", b.String())
		out, err := tool(t, ws, "read", `{"path":"big.txt"}`)
		require.NoError(t, err)
		require.LessOrEqual(t, len(out), toolOutputCap)
		require.True(t, strings.HasPrefix(out, "line 1\nline 2\n"))
		require.Regexp(t, `\[truncated: showing lines 1-(\d+); read on with offset (\d+)\]$`, out)
		m := regexp.MustCompile(`read on with offset (\d+)`).FindStringSubmatch(out)
		next, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		out, err = tool(t, ws, "read", fmt.Sprintf(`{"path":"big.txt","offset":%d,"limit":1}`, next))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("line %d\n", next), out)
	})
	t.Run("long line", func(t *testing.T) {
		writeFile(t, ws, "long.txt", strings.Repeat("x", 200<<10)+"\nafter\n")
		out, err := tool(t, ws, "read", `{"path":"long.txt","lineNumbers":true}`)
		require.NoError(t, err)
		require.Equal(t, "     1\t"+strings.Repeat("x", readLineCap)+"…\n     2\tafter\n", out)
	})
}

func TestWriteAndLs(t *testing.T) {
	ws := t.TempDir()
	out, err := tool(t, ws, "write", `{"path":"a/b/c.txt","content":"hello"}`)
	require.NoError(t, err)
	require.Equal(t, "wrote 5 bytes to a/b/c.txt", out)
	writeFile(t, ws, "z.txt", "")

	out, err = tool(t, ws, "ls", `{}`)
	require.NoError(t, err)
	require.Equal(t, "a/\nz.txt", out)
	out, err = tool(t, ws, "ls", `{"path":"a/b"}`)
	require.NoError(t, err)
	require.Equal(t, "c.txt", out)
	require.NoError(t, os.Mkdir(filepath.Join(ws, "empty"), 0o755))
	out, err = tool(t, ws, "ls", `{"path":"empty"}`)
	require.NoError(t, err)
	require.Equal(t, "(empty folder)", out)

	_, err = tool(t, ws, "write", `{"content":"x"}`)
	require.ErrorContains(t, err, "path is empty")
}

func TestGrep(t *testing.T) {
	ws := t.TempDir()
	writeFile(t, ws, "a.go", "package a\n// TODO: one\nfunc A() {}\n")
	writeFile(t, ws, "sub/b.go", "package sub\n\n// todo: two\r\n")
	writeFile(t, ws, "sub/c.txt", "TODO: three\n")
	writeFile(t, ws, "bin.dat", "TODO\x00binary")
	writeFile(t, ws, ".git/objects/x", "TODO: in git\n")
	big := make([]byte, grepMaxFileBytes+1)
	copy(big, "TODO: big\n")
	writeFile(t, ws, "big.txt", string(big))

	for _, tc := range []struct {
		name, input, want, wantErr string
	}{
		{name: "all", input: `{"pattern":"TODO"}`, want: "a.go:2: // TODO: one\nsub/c.txt:1: TODO: three\n[skipped 1 files over 4 MiB or unreadable; use bash for them]"},
		{name: "ignore case and glob", input: `{"pattern":"todo:","glob":"*.go","ignoreCase":true}`, want: "a.go:2: // TODO: one\nsub/b.go:3: // todo: two"},
		{name: "path glob", input: `{"pattern":"(?i)todo","glob":"sub/**/*.go"}`, want: "sub/b.go:3: // todo: two"},
		{name: "one file", input: `{"pattern":"func","path":"a.go"}`, want: "a.go:3: func A() {}"},
		{name: "a folder", input: `{"pattern":"package","path":"sub"}`, want: "sub/b.go:1: package sub"},
		{name: "none", input: `{"pattern":"nothing here","path":"sub"}`, want: "no matches"},
		{name: "bad regexp", input: `{"pattern":"a(b"}`, wantErr: "invalid pattern (Go RE2 syntax)"},
		{name: "bad glob", input: `{"pattern":"a","glob":"[x"}`, wantErr: "invalid glob"},
		{name: "missing path", input: `{"pattern":"a","path":"nope"}`, wantErr: "no such file"},
		{name: "no pattern", input: `{}`, wantErr: "pattern is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tool(t, ws, "grep", tc.input)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, out)
		})
	}

	t.Run("absolute paths outside the workspace", func(t *testing.T) {
		other := t.TempDir()
		writeFile(t, other, "x.txt", "needle\n")
		out, err := tool(t, ws, "grep", `{"pattern":"needle","path":"`+other+`"}`)
		require.NoError(t, err)
		require.Equal(t, filepath.Join(other, "x.txt")+":1: needle", out)
	})
	t.Run("capped", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "many.txt", strings.Repeat("match "+strings.Repeat("y", 500)+"\n", grepMatchCap+10))
		out, err := tool(t, dir, "grep", `{"pattern":"match"}`)
		require.NoError(t, err)
		lines := strings.Split(out, "\n")
		require.Len(t, lines, grepMatchCap+1)
		require.Equal(t, "[stopped at 200 matches: narrow the pattern, the path or the glob]", lines[grepMatchCap])
		require.Equal(t, "many.txt:1: match "+strings.Repeat("y", grepLineCap-6)+"…", lines[0])
	})
}

func TestFind(t *testing.T) {
	ws := t.TempDir()
	writeFile(t, ws, "a.go", "")
	writeFile(t, ws, "a_test.go", "")
	writeFile(t, ws, "sub/deep/b.go", "")
	writeFile(t, ws, "sub/c.txt", "")
	writeFile(t, ws, ".git/d.go", "")

	for _, tc := range []struct {
		name, input, want, wantErr string
	}{
		{name: "name glob", input: `{"pattern":"*.go"}`, want: "a.go\na_test.go\nsub/deep/b.go"},
		{name: "path glob", input: `{"pattern":"sub/**/*.go"}`, want: "sub/deep/b.go"},
		{name: "double star", input: `{"pattern":"**/c.txt"}`, want: "sub/c.txt"},
		{name: "folders", input: `{"pattern":"de*"}`, want: "sub/deep/"},
		{name: "under a path", input: `{"pattern":"*","path":"sub/deep"}`, want: "sub/deep/b.go"},
		{name: "none", input: `{"pattern":"*.rs"}`, want: "no files found"},
		{name: "bad", input: `{"pattern":"[a"}`, wantErr: "invalid glob"},
		{name: "empty", input: `{}`, wantErr: "pattern is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tool(t, ws, "find", tc.input)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, out)
		})
	}

	t.Run("capped", func(t *testing.T) {
		dir := t.TempDir()
		for i := range findResultCap + 5 {
			writeFile(t, dir, fmt.Sprintf("f%04d.txt", i), "")
		}
		out, err := tool(t, dir, "find", `{"pattern":"*.txt"}`)
		require.NoError(t, err)
		lines := strings.Split(out, "\n")
		require.Len(t, lines, findResultCap+1)
		require.Equal(t, "[stopped at 500 results: narrow the pattern or the path]", lines[findResultCap])
	})
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"*.go", "a/b/c.go", true},
		{"*.go", "c.txt", false},
		{"a/*.go", "a/c.go", true},
		{"a/*.go", "a/b/c.go", false},
		{"a/**/*.go", "a/c.go", true},
		{"a/**/*.go", "a/b/c/d.go", true},
		{"**", "anything/at/all", true},
		{"**/x/**", "a/x/b", true},
		{"**/x/**", "a/y/b", false},
		{strings.Repeat("**/", 30) + "z", strings.Repeat("a/", 40) + "y", false}, // stays fast
	} {
		require.Equal(t, tc.want, matchGlob(tc.pattern, tc.path), "%s ~ %s", tc.pattern, tc.path)
	}
}

func TestBash(t *testing.T) {
	ws := t.TempDir()
	t.Run("output", func(t *testing.T) {
		out, err := tool(t, ws, "bash", `{"command":"echo out; echo err >&2; pwd"}`)
		require.NoError(t, err)
		require.Equal(t, "out\nerr\n"+ws+"\n", out)
	})
	t.Run("exit code", func(t *testing.T) {
		_, err := tool(t, ws, "bash", `{"command":"echo failing; exit 3"}`)
		require.ErrorContains(t, err, "failing\n\n[exit code 3]")
	})
	t.Run("empty", func(t *testing.T) {
		_, err := tool(t, ws, "bash", `{"command":"  "}`)
		require.ErrorContains(t, err, "command is empty")
	})
	t.Run("stdin is empty", func(t *testing.T) {
		out, err := tool(t, ws, "bash", `{"command":"cat; echo end"}`)
		require.NoError(t, err)
		require.Equal(t, "end\n", out)
	})
	t.Run("big output keeps its head and tail", func(t *testing.T) {
		out, err := tool(t, ws, "bash", `{"command":"seq 1 1000000"}`)
		require.NoError(t, err)
		require.LessOrEqual(t, len(out), toolOutputCap)
		require.True(t, strings.HasPrefix(out, "1\n2\n3\n"))
		require.True(t, strings.HasSuffix(out, "999999\n1000000\n"))
		require.Contains(t, out, "bytes of output omitted")
	})
	t.Run("timeout kills the process group", func(t *testing.T) {
		// A child that holds the output pipe and ignores the end of bash.
		pidFile := filepath.Join(ws, "child.pid")
		start := time.Now()
		_, err := tool(t, ws, "bash", `{"command":"sleep 300 & echo $! > `+pidFile+`; echo started; wait","timeoutSeconds":1}`)
		require.ErrorContains(t, err, "started\n\n[timed out after 1s; the command and its children were killed]")
		require.Less(t, time.Since(start), 5*time.Second)
		b, err := os.ReadFile(pidFile)
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return !running(pid) }, 5*time.Second, 20*time.Millisecond, "the child %d survived", pid)
	})
	t.Run("a background child does not block the tool", func(t *testing.T) {
		start := time.Now()
		out, err := tool(t, ws, "bash", `{"command":"sleep 300 & echo quick"}`)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(out, "quick\n"), out)
		require.Less(t, time.Since(start), 5*time.Second)
	})
}

// running reports whether a process exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func TestSandboxToolPanicIsAToolError(t *testing.T) {
	sandboxTools["panic"] = func(context.Context, string, json.RawMessage) (string, error) { panic("boom") }
	defer delete(sandboxTools, "panic")
	_, err := tool(t, t.TempDir(), "panic", `{}`)
	require.ErrorContains(t, err, "tool panic crashed: boom")
}
