package model

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func readAllEvents(s string) ([]sseEvent, error) {
	r := newSSEReader(strings.NewReader(s))
	var evs []sseEvent
	for {
		ev, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []sseEvent
		wantErr error
	}{
		{name: "anthropic", in: "event: ping\ndata: {\"type\": \"ping\"}\n\n", want: []sseEvent{{Event: "ping", Data: `{"type": "ping"}`}}},
		{name: "openai", in: "data: {\"a\":1}\n\ndata: [DONE]\n\n", want: []sseEvent{{Data: `{"a":1}`}, {Data: "[DONE]"}}},
		{name: "crlf", in: "event: x\r\ndata: 1\r\n\r\n", want: []sseEvent{{Event: "x", Data: "1"}}},
		{name: "no space after colon", in: "data:1\n\n", want: []sseEvent{{Data: "1"}}},
		{name: "two spaces keep one", in: "data:  1\n\n", want: []sseEvent{{Data: " 1"}}},
		{name: "multi-line data", in: "data: a\ndata: b\n\n", want: []sseEvent{{Data: "a\nb"}}},
		{name: "comments and ids", in: ": OPENROUTER PROCESSING\n\nid: 7\nretry: 100\ndata: x\n\n", want: []sseEvent{{Data: "x"}}},
		{name: "event name without data is dropped", in: "event: x\n\ndata: y\n\n", want: []sseEvent{{Data: "y"}}},
		{name: "empty data", in: "data:\n\n", want: []sseEvent{{Data: ""}}},
		{name: "last blank line missing", in: "data: [DONE]\n", want: []sseEvent{{Data: "[DONE]"}}},
		{name: "cut mid-line", in: "data: a\n\ndata: {\"par", want: []sseEvent{{Data: "a"}}, wantErr: io.ErrUnexpectedEOF},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAllEvents(tt.in)
			require.ErrorIs(t, err, tt.wantErr)
			if tt.wantErr == nil {
				require.NoError(t, err)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSSEReaderLongLine(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the read buffer
	got, err := readAllEvents("data: " + long + "\n\n")
	require.NoError(t, err)
	require.Equal(t, []sseEvent{{Data: long}}, got)

	_, err = readAllEvents("data: " + strings.Repeat("x", maxSSELine+1) + "\n\n")
	require.ErrorIs(t, err, errSSELineTooLong)
}

// FuzzSSEReader checks that any input ends in events or an error, never a
// panic or a loop, and that events written out are read back as written.
func FuzzSSEReader(f *testing.F) {
	f.Add("event: message_start\ndata: {\"type\": \"message_start\"}\n\n", "content_block_delta", `{"type":"content_block_delta"}`)
	f.Add("data: {\"choices\":[]}\n\ndata: [DONE]\n\n", "", "[DONE]")
	f.Add(": comment\r\n\r\ndata:x\r\ndata: y\n\n", "ping", "")
	f.Add("data: cut", "e", " leading space")
	f.Fuzz(func(t *testing.T, raw, event, data string) {
		evs, _ := readAllEvents(raw)
		require.LessOrEqual(t, len(evs), strings.Count(raw, "\n")+1)

		if strings.ContainsAny(event+data, "\r\n") {
			return
		}
		got, err := readAllEvents(": hi\nevent: " + event + "\ndata: " + data + "\n\n")
		require.NoError(t, err)
		require.Equal(t, []sseEvent{{Event: event, Data: data}}, got)
	})
}
