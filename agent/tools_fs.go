package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Bounds of the file tools.
const (
	readLineCap  = 4 << 10 // a longer line is cut
	lsEntryCap   = 1000
	binarySniff  = 8 << 10 // bytes looked at to tell a binary file
	editMaxBytes = 16 << 20
)

func toolRead(ctx context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Path        string `json:"path"`
		Offset      int    `json:"offset"`
		Limit       int    `json:"limit"`
		LineNumbers bool   `json:"lineNumbers"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	if in.Path == "" {
		return "", errors.New("path is empty")
	}
	f, err := openRegular(resolve(workspace, in.Path))
	if err != nil {
		return "", err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	if head, _ := r.Peek(binarySniff); bytes.IndexByte(head, 0) >= 0 {
		return "", fmt.Errorf("%s is a binary file; inspect it with bash (e.g. file, xxd, head -c)", in.Path)
	}

	from := max(in.Offset, 1)
	var out strings.Builder
	n := 0 // lines read
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		line, err := r.ReadSlice('\n')
		long := errors.Is(err, bufio.ErrBufferFull)
		if len(line) == 0 && err != nil && !long {
			if !errors.Is(err, io.EOF) {
				return "", err
			}
			break
		}
		n++
		if long { // keep the start of a very long line, skip the rest
			line = append(line[:readLineCap:readLineCap], "…\n"...)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
		} else if len(line) > readLineCap {
			line = append(line[:readLineCap:readLineCap], "…\n"...)
		}
		if n < from {
			continue
		}
		if in.Limit > 0 && n >= from+in.Limit {
			break
		}
		if out.Len()+len(line) > toolOutputCap-256 {
			fmt.Fprintf(&out, "\n[truncated: showing lines %d-%d; read on with offset %d]", from, n-1, n)
			return out.String(), nil
		}
		if in.LineNumbers {
			fmt.Fprintf(&out, "%6d\t", n)
		}
		out.Write(line)
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if from > n && !(from == 1 && n == 0) {
		return "", fmt.Errorf("offset %d is past the end of the file (%d lines)", in.Offset, n)
	}
	return out.String(), nil
}

// openRegular opens a regular file: reading a fifo or a device could block
// the tool or never end.
func openRegular(p string) (*os.File, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a folder; list it with ls", p)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return os.Open(p)
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

func toolEdit(_ context.Context, workspace string, input json.RawMessage) (string, error) {
	var in struct {
		Path    string `json:"path"`
		OldText string `json:"oldText"`
		NewText string `json:"newText"`
	}
	if err := decodeInput(input, &in); err != nil {
		return "", err
	}
	switch {
	case in.Path == "":
		return "", errors.New("path is empty")
	case in.OldText == "":
		return "", errors.New("oldText is empty: give the exact text to replace")
	case in.OldText == in.NewText:
		return "", errors.New("oldText and newText are the same: nothing to change")
	}
	p := resolve(workspace, in.Path)
	f, err := openRegular(p)
	if err != nil {
		return "", err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return "", err
	}
	if fi.Size() > editMaxBytes {
		f.Close()
		return "", fmt.Errorf("%s is %d bytes; edit works on files up to %d bytes (use bash)", in.Path, fi.Size(), editMaxBytes)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return "", err
	}
	text := string(b)
	switch n := strings.Count(text, in.OldText); n {
	case 0:
		return "", fmt.Errorf("oldText not found in %s: it must match the file exactly, including whitespace and indentation (read the file first)", in.Path)
	case 1:
	default:
		return "", fmt.Errorf("oldText found %d times in %s: give more context so that it matches exactly once", n, in.Path)
	}
	i := strings.Index(text, in.OldText)
	text = text[:i] + in.NewText + text[i+len(in.OldText):]
	if err := os.WriteFile(p, []byte(text), fi.Mode().Perm()); err != nil {
		return "", err
	}
	line := strings.Count(text[:i], "\n") + 1
	return fmt.Sprintf("edited %s: replaced %d lines with %d lines at line %d", in.Path,
		strings.Count(in.OldText, "\n")+1, strings.Count(in.NewText, "\n")+1, line), nil
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
	if len(names) > lsEntryCap {
		more := len(names) - lsEntryCap
		names = append(names[:lsEntryCap], fmt.Sprintf("[%d more entries not shown; use find or bash]", more))
	}
	if len(names) == 0 {
		return "(empty folder)", nil
	}
	return strings.Join(names, "\n"), nil
}
