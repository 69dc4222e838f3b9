package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one entry of a run's event stream. Seq numbers start at 1 and grow
// by one; the stream entry id is "0-<seq>", so replay after a sequence number is
// a plain range read.
type Event struct {
	Seq  int64           `json:"seq"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data,omitempty"`
}

// EventEnd is the type of the last event of every run.
const EventEnd = "run_end"

// eventsLua begins every script that writes events: KEYS[2] is the run's
// stream and ARGV[1] its length bound (maxEvents). addEvent writes the event
// of sequence number seq; addEvents writes n (type, time, data) triples of
// ARGV, from index first, after seq, and returns the last number.
const eventsLua = `
local function addEvent(seq, typ, time, data)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '0-' .. seq, 'type', typ, 'time', time, 'data', data)
end
local function addEvents(seq, first, n)
  for i = 0, n - 1 do
    seq = seq + 1
    addEvent(seq, ARGV[first + i * 3], ARGV[first + 1 + i * 3], ARGV[first + 2 + i * 3])
  end
  return seq
end
`

// appendScript appends events with consecutive sequence numbers and announces
// them on the run's events channel; it also sets record fields, unless the run
// has ended. KEYS: record, events. ARGV: maxEvents, retention ms, events
// channel, m, then m field/value arguments, then (type, time, data) triples.
var appendScript = redis.NewScript(eventsLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
local m = tonumber(ARGV[4])
if m > 0 and st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + m))
end
local e = 5 + m
local n = (#ARGV - e + 1) / 3
local seq = addEvents(redis.call('HINCRBY', KEYS[1], 'eventSeq', n) - n, e, n)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], seq)
return seq
`)

// Append adds events to a run's stream in one round trip and returns the last
// sequence number. Events must not be of type EventEnd; Finish writes that one.
func (s *Store) Append(ctx context.Context, id string, events []Event) (int64, error) {
	return s.AppendRuntime(ctx, id, "", "", events)
}

// AppendRuntime is Append that also records the sandbox that runs the
// current attempt (provider and runtime id, runtime state running), in the
// same round trip, unless the run has ended. Empty names record nothing.
func (s *Store) AppendRuntime(ctx context.Context, id, provider, runtimeID string, events []Event) (int64, error) {
	var fields []any
	if provider != "" {
		fields = []any{fProvider, provider, fRuntimeID, runtimeID, fRuntimeState, string(RuntimeRunning)}
	}
	if len(events) == 0 && len(fields) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 4+len(fields)+3*len(events))
	args = append(args, s.maxEvents, s.retention.Milliseconds(), s.EventsChannel(id), len(fields))
	args = append(args, fields...)
	args = appendEventArgs(args, events)
	seq, err := appendScript.Run(ctx, s.rdb, []string{s.recordKey(id), s.eventsKey(id)}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("append events to %s: %w", id, err)
	}
	if seq < 0 {
		return 0, ErrNotFound
	}
	return seq, nil
}

// appendEventArgs adds the (type, time, data) triples of events to a
// script's arguments.
func appendEventArgs(args []any, events []Event) []any {
	for _, e := range events {
		t := e.Time
		if t.IsZero() {
			t = time.Now()
		}
		data := []byte(e.Data)
		if len(data) == 0 {
			data = []byte("{}")
		}
		args = append(args, e.Type, t.UnixMilli(), data)
	}
	return args
}

// Events returns up to count events after sequence number after, in order.
func (s *Store) Events(ctx context.Context, id string, after int64, count int64) ([]Event, error) {
	msgs, err := s.rdb.XRangeN(ctx, s.eventsKey(id), "(0-"+strconv.FormatInt(after, 10), "+", count).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read events of %s: %w", id, err)
	}
	events := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		events = append(events, decodeEvent(m))
	}
	return events, nil
}

func decodeEvent(m redis.XMessage) Event {
	_, seqStr, _ := strings.Cut(m.ID, "-")
	seq, _ := strconv.ParseInt(seqStr, 10, 64)
	e := Event{Seq: seq}
	e.Type, _ = m.Values["type"].(string)
	if ms, err := strconv.ParseInt(fmt.Sprint(m.Values["time"]), 10, 64); err == nil {
		e.Time = time.UnixMilli(ms).UTC()
	}
	if d, ok := m.Values["data"].(string); ok {
		e.Data = json.RawMessage(d)
	}
	return e
}
