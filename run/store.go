package run

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned for a run that does not exist (or has expired).
var ErrNotFound = errors.New("run not found")

// ErrTerminal is returned when a change is refused because the run has ended.
var ErrTerminal = errors.New("run already ended")

// StoreConfig configures a Store.
type StoreConfig struct {
	Redis redis.UniversalClient
	// Prefix of every key the store writes. Default "oneshot".
	Prefix string
	// Retention is how long a run's record and events are kept after they are
	// last written. Default 24h.
	Retention time.Duration
	// MaxEvents caps a run's event stream (approximately). Default 100000.
	MaxEvents int64
}

// Store keeps run records (one hash per run) and run events (one stream per run).
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
	maxEvents int64
}

// NewStore returns a store.
func NewStore(cfg StoreConfig) *Store {
	return &Store{
		rdb:       cfg.Redis,
		prefix:    cmp.Or(cfg.Prefix, "oneshot"),
		retention: cmp.Or(cfg.Retention, 24*time.Hour),
		maxEvents: cmp.Or(cfg.MaxEvents, 100_000),
	}
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Keys share a hash tag so that one run's keys live in one cluster slot.
func (s *Store) recordKey(id string) string { return s.prefix + ":run:{" + id + "}" }
func (s *Store) eventsKey(id string) string { return s.prefix + ":run:{" + id + "}:events" }

// Listing indexes: sorted sets of run ids scored by creation time (µs), one
// per organization and one per persistent agent.
func (s *Store) orgIndexKey(org string) string { return s.prefix + ":runs:org:" + org }
func (s *Store) agentIndexKey(org, agentID string) string {
	return s.prefix + ":runs:org:" + org + ":agent:" + agentID
}

// CancelChannel is the pub/sub channel on which a cancel is announced (the
// payload is the run id); every worker listens to it.
func (s *Store) CancelChannel() string { return s.prefix + ":cancel" }

// EventsChannel is the pub/sub channel on which new events of a run are
// announced (the payload is the last sequence number): a wake-up for the API
// processes that stream them.
func (s *Store) EventsChannel(id string) string { return s.prefix + ":events:" + id }

// indexKeep is how long index entries are kept after the run's creation.
// A record lives Retention after its last write (its end), so entries are
// kept longer than that, and listings drop those whose record has expired.
func (s *Store) indexKeep() time.Duration { return 2 * s.retention }

// Create writes a new record and adds it to the listing indexes, atomically.
func (s *Store) Create(ctx context.Context, r *Record) error {
	fields, err := encodeNew(r)
	if err != nil {
		return err
	}
	key := s.recordKey(r.ID)
	score := float64(r.CreatedAt.UnixMicro()) // exact in a float64 until the year 2255
	cutoff := "(" + strconv.FormatInt(time.Now().Add(-s.indexKeep()).UnixMicro(), 10)
	indexes := []string{s.orgIndexKey(r.Org)}
	if !r.Spec.Ephemeral && r.AgentID != "" {
		indexes = append(indexes, s.agentIndexKey(r.Org, r.AgentID))
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, fields...)
		p.PExpire(ctx, key, s.retention)
		for _, ix := range indexes {
			p.ZAdd(ctx, ix, redis.Z{Score: score, Member: r.ID})
			p.ZRemRangeByScore(ctx, ix, "-inf", cutoff)
			p.PExpire(ctx, ix, s.indexKeep())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// Get reads a record.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	h, err := s.rdb.HGetAll(ctx, s.recordKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	if len(h) == 0 || h[fID] == "" {
		return nil, ErrNotFound
	}
	return decode(h)
}

// outcomeFields are the fields of a record that say how its run ended, or
// that it has not: what a sync answer holds.
var outcomeFields = []string{fID, fAgentID, fStatus, fModel, fProvider, fRuntimeID, fRuntimeState,
	fOutput, fError, fLogsRunner, fLogsRuntime, fUsage}

// Outcome reads the fields of a record that say how its run ended, or that it
// has not: id, agent, status, model, sandbox, output, error, logs and usage.
// It reads and decodes less than Get: not the spec, the steps or the times.
func (s *Store) Outcome(ctx context.Context, id string) (*Record, error) {
	vals, err := s.rdb.HMGet(ctx, s.recordKey(id), outcomeFields...).Result()
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	h := make(map[string]string, len(outcomeFields))
	for i, v := range vals {
		if str, ok := v.(string); ok {
			h[outcomeFields[i]] = str
		}
	}
	if h[fID] == "" {
		return nil, ErrNotFound
	}
	r, err := decode(h)
	if err != nil {
		return nil, err
	}
	r.Spec.Model = h[fModel]
	return r, nil
}

// startScript moves a non-terminal run to running, counts the attempt and
// returns the whole record. A terminal run is returned unchanged.
var startScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled' then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'status', 'running', 'runtimeState', 'pending', 'worker', ARGV[1])
  if redis.call('HEXISTS', KEYS[1], 'startedAt') == 0 then
    redis.call('HSET', KEYS[1], 'startedAt', ARGV[2])
  end
end
return redis.call('HGETALL', KEYS[1])
`)

// Start marks an attempt of a run as begun by worker and returns the record. If
// the run has already ended, the record is returned unchanged and the caller
// must not run it.
func (s *Store) Start(ctx context.Context, id, worker string) (*Record, error) {
	v, err := startScript.Run(ctx, s.rdb, []string{s.recordKey(id)}, worker, formatTime(time.Now())).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("start run %s: %w", id, err)
	}
	h, err := pairsToMap(v)
	if err != nil {
		return nil, fmt.Errorf("start run %s: %w", id, err)
	}
	return decode(h)
}

// updateScript sets fields of a run that has not ended.
var updateScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st == 'completed' or st == 'failed' or st == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// SetRuntime records the sandbox that runs the current attempt.
func (s *Store) SetRuntime(ctx context.Context, id, provider, runtimeID string, state RuntimeState) error {
	return s.update(ctx, id, fProvider, provider, fRuntimeID, runtimeID, fRuntimeState, string(state))
}

// Requeue hands a started run back to the queue, for a worker that shuts down
// before the run ends: the next attempt starts it again.
func (s *Store) Requeue(ctx context.Context, id string) error {
	return s.update(ctx, id, fStatus, string(StatusQueued), fRuntimeState, string(RuntimePending))
}

func (s *Store) update(ctx context.Context, id string, fields ...any) error {
	n, err := updateScript.Run(ctx, s.rdb, []string{s.recordKey(id)}, fields...).Int()
	switch {
	case err != nil:
		return fmt.Errorf("update run %s: %w", id, err)
	case n < 0:
		return ErrNotFound
	case n == 0:
		return ErrTerminal
	}
	return nil
}

// finishScript writes the result of a run that has not ended, appends the
// attempt's last events and the terminal event, and wakes the waiting API
// process and the event streams. KEYS: record, events. ARGV: maxEvents,
// retention ms, event time, event data, events channel, n, then n (type, time,
// data) triples, then field/value pairs. Returns {1, callbacks}, or {0} or
// {-1} when the run has ended or does not exist.
var finishScript = redis.NewScript(eventsLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1} end
if st == 'completed' or st == 'failed' or st == 'cancelled' then return {0} end
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], unpack(ARGV, 7 + 3 * n))
local seq = addEvents(redis.call('HINCRBY', KEYS[1], 'eventSeq', n + 1) - n - 1, 7, n) + 1
addEvent(seq, 'run_end', ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local reply = redis.call('HGET', KEYS[1], 'replyTo')
if reply and reply ~= '' then redis.call('PUBLISH', reply, redis.call('HGET', KEYS[1], 'id')) end
redis.call('PUBLISH', ARGV[5], seq)
return {1, redis.call('HGET', KEYS[1], 'callbacks') or ''}
`)

// Finish writes the final result of a run and wakes its waiter. It returns
// ErrTerminal, writing nothing, if the run has already ended (for example a
// user cancelled it): terminal states are final.
func (s *Store) Finish(ctx context.Context, id string, res *Result) error {
	_, err := s.FinishCallbacks(ctx, id, res)
	return err
}

// FinishCallbacks is Finish that also returns the webhook URLs registered when
// the result was written: exactly those are to be told of the run's end.
func (s *Store) FinishCallbacks(ctx context.Context, id string, res *Result) ([]string, error) {
	now := time.Now()
	fields, err := encodeResult(res, now)
	if err != nil {
		return nil, err
	}
	data := fmt.Sprintf(`{"status":%q,"error":%q}`, res.Status, res.Error)
	args := make([]any, 0, 6+3*len(res.Events)+len(fields))
	args = append(args, s.maxEvents, s.retention.Milliseconds(), now.UnixMilli(), data, s.EventsChannel(id), len(res.Events))
	args = appendEventArgs(args, res.Events)
	args = append(args, fields...)
	v, err := finishScript.Run(ctx, s.rdb, []string{s.recordKey(id), s.eventsKey(id)}, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("finish run %s: %w", id, err)
	}
	switch n, _ := v[0].(int64); {
	case n < 0:
		return nil, ErrNotFound
	case n == 0:
		return nil, ErrTerminal
	}
	cbs, _ := v[1].(string)
	return splitCallbacks(cbs), nil
}

// Ended returns those of the runs that have ended (or no longer exist), in
// one pipelined round trip.
func (s *Store) Ended(ctx context.Context, ids []string) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, s.recordKey(id), fStatus)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read run statuses: %w", err)
	}
	var ended []string
	for i, cmd := range cmds {
		st, err := cmd.Result()
		if errors.Is(err, redis.Nil) || (err == nil && Status(st).Terminal()) {
			ended = append(ended, ids[i])
		}
	}
	return ended, nil
}

// Ping checks that the store's Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
