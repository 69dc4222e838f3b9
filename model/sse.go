package model

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// maxSSELine bounds one line of an event stream (a tool input arrives in
// pieces, so real lines are short).
const maxSSELine = 8 << 20

var errSSELineTooLong = errors.New("event stream line too long")

// sseEvent is one server-sent event.
type sseEvent struct {
	Event string // "event:" field; "" when the stream names none (OpenAI)
	Data  string // "data:" lines joined with "\n"
}

// sseReader reads a text/event-stream as both Anthropic and OpenAI send it:
// lines end in \n or \r\n, a blank line ends an event, lines starting with
// ':' are comments (OpenRouter's keep-alives), id and retry are ignored.
type sseReader struct {
	r    *bufio.Reader
	done bool
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next event. A clean end returns io.EOF; an end in the
// middle of a line returns io.ErrUnexpectedEOF. An event whose lines are
// complete but that lacks its closing blank line is still returned.
func (s *sseReader) Next() (sseEvent, error) {
	var (
		ev      sseEvent
		data    strings.Builder
		hasData bool
	)
	for {
		if s.done {
			if hasData {
				ev.Data = data.String()
				return ev, nil
			}
			return sseEvent{}, io.EOF
		}
		line, err := s.readLine()
		if err == io.EOF {
			s.done = true
			continue
		}
		if err != nil {
			return sseEvent{}, err
		}
		if line == "" {
			if hasData {
				ev.Data = data.String()
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "event":
			ev.Event = value
		}
	}
}

// readLine returns one line without its end. io.EOF means the stream ended
// at a line boundary; a last line without its end is io.ErrUnexpectedEOF.
func (s *sseReader) readLine() (string, error) {
	var long []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > maxSSELine+2 {
				return "", errSSELineTooLong
			}
			long = append(long, chunk...)
			continue
		}
		if long != nil {
			chunk = append(long, chunk...)
		}
		if len(chunk) > maxSSELine+2 { // the limit, and the line end
			return "", errSSELineTooLong
		}
		if err == io.EOF {
			if len(chunk) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", io.EOF
		}
		if err != nil {
			return "", err
		}
		chunk = bytes.TrimSuffix(chunk[:len(chunk)-1], []byte("\r"))
		return string(chunk), nil
	}
}
