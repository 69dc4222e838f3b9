package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Bounds of grep and find.
const (
	grepMatchCap     = 200
	grepLineCap      = 300     // bytes of a matching line shown
	grepMaxFileBytes = 4 << 20 // bigger files are skipped
	findResultCap    = 500
	searchTimeout    = time.Minute
)

// vcsDirs are not searched: their content is the tool's noise, not the model's.
var vcsDirs = map[string]bool{".git": true, ".hg": true, ".svn": true}

func toolGrep(ctx context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Pattern    string `json:"pattern"`
		Path       string `json:"path"`
		Glob       string `json:"glob"`
		IgnoreCase bool   `json:"ignoreCase"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	if in.Pattern == "" {
		return "", errors.New("pattern is empty")
	}
	expr := in.Pattern
	if in.IgnoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return "", fmt.Errorf("invalid pattern (Go RE2 syntax): %v", err)
	}
	if err := checkGlob(in.Glob); err != nil {
		return "", err
	}
	root := resolve(workspace, in.Path)
	ctx, cancel := context.WithTimeout(ctx, searchTimeout)
	defer cancel()

	var out strings.Builder
	matches, big, unreadable := 0, 0, 0
	full := false
	search := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			unreadable++
			return
		}
		if bytes.IndexByte(b[:min(len(b), binarySniff)], 0) >= 0 {
			return // binary
		}
		name := display(workspace, p)
		for n := 1; len(b) > 0; n++ {
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line, b = b[:i], b[i+1:]
			} else {
				b = nil
			}
			if !re.Match(line) {
				continue
			}
			if matches == grepMatchCap {
				full = true
				return
			}
			matches++
			line = bytes.TrimRight(line, "\r")
			if len(line) > grepLineCap {
				line = append(line[:grepLineCap:grepLineCap], "…"...)
			}
			fmt.Fprintf(&out, "%s:%d: %s\n", name, n, line)
		}
	}
	err = walk(ctx, root, func(p, rel string, d fs.DirEntry) bool {
		if !d.Type().IsRegular() || (rel != "" && in.Glob != "" && !matchGlob(in.Glob, rel)) {
			return true
		}
		if fi, err := d.Info(); err != nil || fi.Size() > grepMaxFileBytes {
			big++
			return true
		}
		search(p)
		return !full
	})
	if err != nil {
		return "", err
	}
	if matches == 0 {
		out.WriteString("no matches\n")
	}
	if full {
		fmt.Fprintf(&out, "[stopped at %d matches: narrow the pattern, the path or the glob]\n", grepMatchCap)
	}
	if big > 0 {
		fmt.Fprintf(&out, "[skipped %d files over %d MiB or unreadable; use bash for them]\n", big, grepMaxFileBytes>>20)
	}
	if unreadable > 0 {
		fmt.Fprintf(&out, "[%d files could not be read]\n", unreadable)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(&out, "[search stopped after %s: results are incomplete; narrow the path]\n", searchTimeout)
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

func toolFind(ctx context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Pattern string `json:"pattern"`
		Path    string `json:"path"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	if in.Pattern == "" {
		return "", errors.New("pattern is empty")
	}
	if err := checkGlob(in.Pattern); err != nil {
		return "", err
	}
	root := resolve(workspace, in.Path)
	ctx, cancel := context.WithTimeout(ctx, searchTimeout)
	defer cancel()

	var found []string
	full := false
	err := walk(ctx, root, func(p, rel string, d fs.DirEntry) bool {
		if rel == "" || !matchGlob(in.Pattern, rel) {
			return true
		}
		if len(found) == findResultCap {
			full = true
			return false
		}
		name := display(workspace, p)
		if d.IsDir() {
			name += "/"
		}
		found = append(found, name)
		return true
	})
	if err != nil {
		return "", err
	}
	if len(found) == 0 {
		found = append(found, "no files found")
	}
	if full {
		found = append(found, fmt.Sprintf("[stopped at %d results: narrow the pattern or the path]", findResultCap))
	}
	if ctx.Err() != nil {
		found = append(found, fmt.Sprintf("[search stopped after %s: results are incomplete; narrow the path]", searchTimeout))
	}
	return strings.Join(found, "\n"), nil
}

// walk calls visit for root and everything under it, in lexical order, with
// the slash-separated path relative to root ("" for root itself). It does not
// follow symbolic links and skips version-control folders. visit returns
// false to stop. The walk stops quietly when ctx ends.
func walk(ctx context.Context, root string, visit func(p, rel string, d fs.DirEntry) bool) error {
	if _, err := os.Stat(root); err != nil {
		return err
	}
	stop := errors.New("stop")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return stop
		}
		if err != nil {
			if d != nil && d.IsDir() && p != root {
				return fs.SkipDir // unreadable folder
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if d.IsDir() && rel != "" && vcsDirs[d.Name()] {
			return fs.SkipDir
		}
		if !visit(p, rel, d) {
			return stop
		}
		return nil
	})
	if err == stop {
		return nil
	}
	return err
}

// checkGlob reports a malformed glob pattern.
func checkGlob(pattern string) error {
	for _, seg := range strings.Split(pattern, "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("invalid glob %q: %v", pattern, err)
		}
	}
	return nil
}

// matchGlob matches a glob against a slash-separated relative path. A pattern
// without a slash matches the last element (the file name), as in find -name;
// a pattern with slashes matches the whole path, and its "**" elements match
// any number of folders: "src/**/*.go".
func matchGlob(pattern, rel string) bool {
	if !strings.Contains(pattern, "/") {
		ok, _ := path.Match(pattern, path.Base(rel))
		return ok
	}
	return matchSegments(strings.Split(pattern, "/"), strings.Split(rel, "/"))
}

// matchSegments reports whether pat matches segs, by dynamic programming so
// that patterns with many "**" stay linear in their number.
func matchSegments(pat, segs []string) bool {
	// m[j] says whether pat[i:] matches segs[j:], for the current i.
	m := make([]bool, len(segs)+1)
	m[len(segs)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		next := make([]bool, len(segs)+1)
		for j := len(segs); j >= 0; j-- {
			switch {
			case pat[i] == "**":
				next[j] = m[j] || (j < len(segs) && next[j+1])
			case j < len(segs):
				ok, _ := path.Match(pat[i], segs[j])
				next[j] = ok && m[j+1]
			}
		}
		m = next
	}
	return m[0]
}
