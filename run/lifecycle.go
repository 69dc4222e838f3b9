package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotQueued is returned by Exec for a run that is not waiting to be
// executed; the error is a *NotQueuedError that says why.
var ErrNotQueued = errors.New("run not queued")

// NotQueuedError says why a run cannot be executed.
type NotQueuedError struct {
	Status Status
	// Requested: the run is queued but exec was already asked for it.
	Requested bool
}

func (e *NotQueuedError) Error() string {
	if e.Requested {
		return "run already executed: it is queued for a worker"
	}
	return "run is " + string(e.Status)
}

func (e *NotQueuedError) Is(target error) bool { return target == ErrNotQueued }

// ErrTooManyCallbacks is returned by Watch when a run has MaxCallbacks.
var ErrTooManyCallbacks = errors.New("too many callbacks")

// MaxCallbacks bounds the webhook URLs of one run.
const MaxCallbacks = 10

// execScript marks a queued run as handed to the queue, once, and keeps its
// record for another retention period. KEYS: record. ARGV: time, retention ms.
var execScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1, ''} end
if st ~= 'queued' then return {0, st} end
local at = redis.call('HGET', KEYS[1], 'execAt')
if at and at ~= '' then return {0, st} end
redis.call('HSET', KEYS[1], 'execAt', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, st}
`)

// Exec marks a queued run as handed to the queue. It succeeds once per run;
// then and for a run that is not queued it returns a *NotQueuedError.
func (s *Store) Exec(ctx context.Context, id string) error {
	v, err := execScript.Run(ctx, s.rdb, []string{s.recordKey(id)}, formatTime(time.Now()), s.retention.Milliseconds()).Slice()
	if err != nil {
		return fmt.Errorf("exec run %s: %w", id, err)
	}
	n, _ := v[0].(int64)
	st, _ := v[1].(string)
	switch {
	case n < 0:
		return ErrNotFound
	case n == 0:
		return &NotQueuedError{Status: Status(st), Requested: Status(st) == StatusQueued}
	}
	return nil
}

// unexecScript undoes Exec for a run still queued, after its task could not be
// enqueued, so that exec can be asked again.
var unexecScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'status') == 'queued' then redis.call('HSET', KEYS[1], 'execAt', '') end
return 1
`)

// Unexec undoes Exec of a run that is still queued.
func (s *Store) Unexec(ctx context.Context, id string) error {
	if err := unexecScript.Run(ctx, s.rdb, []string{s.recordKey(id)}).Err(); err != nil {
		return fmt.Errorf("unexec run %s: %w", id, err)
	}
	return nil
}

// cancelScript ends a run that has not ended as cancelled: status, runtime
// state, completion time, the run_end event; then wakes the waiting API process
// and the event streams and tells every worker. KEYS: record, events. ARGV:
// maxEvents, retention ms, event time (ms), completedAt, event data, error,
// cancel channel, events channel. Returns {1, previous status, callbacks},
// {0, status} when the run had ended, {-1} when it does not exist.
var cancelScript = redis.NewScript(eventsLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1, ''} end
if st == 'completed' or st == 'failed' or st == 'cancelled' then return {0, st} end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'runtimeState', 'ended', 'completedAt', ARGV[4], 'error', ARGV[6])
local seq = redis.call('HINCRBY', KEYS[1], 'eventSeq', 1)
addEvent(seq, 'run_end', ARGV[3], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local id = redis.call('HGET', KEYS[1], 'id')
local reply = redis.call('HGET', KEYS[1], 'replyTo')
if reply and reply ~= '' then redis.call('PUBLISH', reply, id) end
redis.call('PUBLISH', ARGV[7], id)
redis.call('PUBLISH', ARGV[8], seq)
return {1, st, redis.call('HGET', KEYS[1], 'callbacks') or ''}
`)

// CancelError is the error a cancelled run records.
const CancelError = "the run was cancelled"

// Cancelled is the outcome of Cancel.
type Cancelled struct {
	// Now: this call cancelled the run. Otherwise it had ended already, and
	// Status says how.
	Now bool
	// Status is the run's status before this call.
	Status Status
	// Callbacks are the webhook URLs to tell, when Now.
	Callbacks []string
}

// Cancel ends a run that has not ended as cancelled, atomically: the record,
// its run_end event, the wake-up of a waiting execute, and the announcement
// to the workers (the one running it kills its sandbox). A run that has ended
// is left as it is.
func (s *Store) Cancel(ctx context.Context, id string) (*Cancelled, error) {
	now := time.Now()
	data := fmt.Sprintf(`{"status":%q,"error":%q}`, StatusCancelled, CancelError)
	v, err := cancelScript.Run(ctx, s.rdb, []string{s.recordKey(id), s.eventsKey(id)},
		s.maxEvents, s.retention.Milliseconds(), now.UnixMilli(), formatTime(now), data, CancelError,
		s.CancelChannel(), s.EventsChannel(id)).Slice()
	if err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", id, err)
	}
	n, _ := v[0].(int64)
	if n < 0 {
		return nil, ErrNotFound
	}
	st, _ := v[1].(string)
	out := &Cancelled{Now: n == 1, Status: Status(st)}
	if len(v) > 2 {
		cbs, _ := v[2].(string)
		out.Callbacks = splitCallbacks(cbs)
	}
	return out, nil
}

// cancelledScript keeps what an attempt of a cancelled run did (logs, usage,
// steps, output) in its record, once; status and error stay the cancel's.
var cancelledScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'status') ~= 'cancelled' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'usage') == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// SaveCancelled keeps the logs, usage and steps of the attempt that a cancel
// stopped, so that what the run consumed stays visible.
func (s *Store) SaveCancelled(ctx context.Context, id string, res *Result) error {
	fields, err := encodeResult(res, time.Now())
	if err != nil {
		return err
	}
	keep := make([]any, 0, len(fields))
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case fStatus, fError, fCompletedAt, fRuntimeState:
			continue
		}
		keep = append(keep, fields[i], fields[i+1])
	}
	if err := cancelledScript.Run(ctx, s.rdb, []string{s.recordKey(id)}, keep...).Err(); err != nil {
		return fmt.Errorf("save cancelled run %s: %w", id, err)
	}
	return nil
}

// watchScript adds a webhook URL to a run. KEYS: record. ARGV: url, max.
// Returns {1|0 (added|already there)|-1 (no run)|-2 (full), status}.
var watchScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1, ''} end
local cbs = redis.call('HGET', KEYS[1], 'callbacks') or ''
local n = 0
for url in string.gmatch(cbs, '[^\n]+') do
  if url == ARGV[1] then return {0, st} end
  n = n + 1
end
if n >= tonumber(ARGV[2]) then return {-2, st} end
if cbs == '' then cbs = ARGV[1] else cbs = cbs .. '\n' .. ARGV[1] end
redis.call('HSET', KEYS[1], 'callbacks', cbs)
return {1, st}
`)

// Watch registers a webhook URL for a run's changes and returns the run's
// status at that moment, and whether the URL is new. A change written after
// Watch returns is told to the URL; one written before is not.
func (s *Store) Watch(ctx context.Context, id, url string) (Status, bool, error) {
	if url == "" || strings.ContainsAny(url, "\r\n") {
		return "", false, fmt.Errorf("watch run %s: invalid url", id)
	}
	v, err := watchScript.Run(ctx, s.rdb, []string{s.recordKey(id)}, url, MaxCallbacks).Slice()
	if err != nil {
		return "", false, fmt.Errorf("watch run %s: %w", id, err)
	}
	n, _ := v[0].(int64)
	st, _ := v[1].(string)
	switch n {
	case -1:
		return "", false, ErrNotFound
	case -2:
		return Status(st), false, ErrTooManyCallbacks
	}
	return Status(st), n == 1, nil
}

// Status reads a run's status alone: a cheap check for a worker that polls.
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	st, err := s.rdb.HGet(ctx, s.recordKey(id), fStatus).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read status of %s: %w", id, err)
	}
	return Status(st), nil
}
