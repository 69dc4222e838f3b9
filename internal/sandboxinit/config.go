//go:build linux

package sandboxinit

import (
	"fmt"
	"strconv"
	"strings"
)

// Config is what the driver tells its init.
type Config struct {
	Root   *Rootfs
	UserNS bool // rootless: already uid 65534, capabilities ambient
}

// The wire format is one record a line: a kind, then tab-separated quoted
// fields. encoding/json would do, but decoding with reflection in a process
// that just started costs half a millisecond, a tenth of a sandbox's start.

// MarshalText encodes the config for the init.
func (c Config) MarshalText() ([]byte, error) {
	var b strings.Builder
	line := func(kind string, fields ...string) {
		b.WriteString(kind)
		for _, f := range fields {
			b.WriteByte('\t')
			b.WriteString(strconv.Quote(f))
		}
		b.WriteByte('\n')
	}
	flag := strconv.FormatBool
	r := c.Root
	line("userns", flag(c.UserNS))
	line("path", r.Path)
	for _, a := range r.Argv {
		line("argv", a)
	}
	for _, e := range r.Env {
		line("env", e)
	}
	for _, m := range r.Binds {
		line("bind", m.Source, m.Target, flag(m.Dir), flag(m.Device))
	}
	for _, l := range r.Links {
		line("link", l.Path, l.Target, flag(l.Device))
	}
	for _, f := range r.Files {
		line("file", f.Path, f.Data)
	}
	for _, t := range r.Tmpfs {
		line("tmpfs", t.Path, strconv.Itoa(t.SizeMiB), t.Mode, flag(t.Owned))
	}
	return []byte(b.String()), nil
}

// recordFields are the number of fields of each kind of record.
var recordFields = map[string]int{"userns": 1, "path": 1, "argv": 1, "env": 1, "bind": 4, "link": 3, "file": 2, "tmpfs": 4}

// UnmarshalText decodes what MarshalText encoded.
func (c *Config) UnmarshalText(text []byte) error {
	c.Root = &Rootfs{}
	r := c.Root
	for n, ln := range strings.Split(strings.TrimSuffix(string(text), "\n"), "\n") {
		parts := strings.Split(ln, "\t")
		f := make([]string, len(parts)-1)
		for i, q := range parts[1:] {
			s, err := strconv.Unquote(q)
			if err != nil {
				return fmt.Errorf("init config line %d: %w", n+1, err)
			}
			f[i] = s
		}
		want := recordFields[parts[0]]
		if want == 0 || len(f) != want {
			return fmt.Errorf("init config line %d: bad record %q", n+1, parts[0])
		}
		switch parts[0] {
		case "userns":
			c.UserNS = f[0] == "true"
		case "path":
			r.Path = f[0]
		case "argv":
			r.Argv = append(r.Argv, f[0])
		case "env":
			r.Env = append(r.Env, f[0])
		case "bind":
			r.Binds = append(r.Binds, Bind{Source: f[0], Target: f[1], Dir: f[2] == "true", Device: f[3] == "true"})
		case "link":
			r.Links = append(r.Links, Symlink{Path: f[0], Target: f[1], Device: f[2] == "true"})
		case "file":
			r.Files = append(r.Files, File{Path: f[0], Data: f[1]})
		case "tmpfs":
			size, err := strconv.Atoi(f[1])
			if err != nil {
				return fmt.Errorf("init config line %d: %w", n+1, err)
			}
			r.Tmpfs = append(r.Tmpfs, Tmpfs{Path: f[0], SizeMiB: size, Mode: f[2], Owned: f[3] == "true"})
		}
	}
	return nil
}
