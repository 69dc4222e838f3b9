package worker

import (
	"fmt"
	"strings"
	"sync"
)

// logCap bounds one log kept in a run record. Lines past it stay in the run's
// event stream, and the record says how many were left out.
const logCap = 1 << 20

// logBuffer collects log lines up to logCap bytes.
type logBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	lines   []int // start offsets, for Tail
	dropped int
}

func (l *logBuffer) Add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len()+len(line)+1 > logCap {
		l.dropped++
		return
	}
	l.lines = append(l.lines, l.b.Len())
	l.b.WriteString(line)
	l.b.WriteByte('\n')
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if l.dropped > 0 {
		s += fmt.Sprintf("[%d more lines are not kept here: the log is capped at %d bytes; all lines are in the run's events]\n", l.dropped, logCap)
	}
	return s
}

// Tail returns up to n of the last lines that start with prefix, without it.
func (l *logBuffer) Tail(n int, prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	var out []string
	for i := len(l.lines) - 1; i >= 0 && len(out) < n; i-- {
		line := strings.TrimSuffix(s[l.lines[i]:], "\n")
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		if _, rest, ok := strings.Cut(line, prefix); ok {
			out = append([]string{rest}, out...)
		}
	}
	return out
}
