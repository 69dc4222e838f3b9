package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrAgentNotFound is returned for an agent that does not exist, or exists in
// another organization.
var ErrAgentNotFound = errors.New("agent not found")

// Agent is a persistent agent: the settings its runs start from. Optional
// settings are nil when unset; the server's defaults then apply at run time.
// A deleted agent is kept (Active false) so that its runs still name it.
type Agent struct {
	ID            string        `json:"id"`
	Org           string        `json:"org"`
	Name          string        `json:"name"`
	Instructions  string        `json:"instructions"`
	Description   *string       `json:"description,omitempty"`
	Model         *string       `json:"model,omitempty"`
	VaultIDs      []string      `json:"vaultIds,omitempty"`
	EnabledTools  []string      `json:"enabledTools,omitempty"`
	DisabledTools []string      `json:"disabledTools,omitempty"`
	Sandbox       *AgentSandbox `json:"sandbox,omitempty"`
	Active        bool          `json:"active"`
	CreatedAt     time.Time     `json:"createdAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	// Seq orders an organization's agents, newest first: the creation time in
	// microseconds, made strictly increasing within a process.
	Seq int64 `json:"seq"`
}

// AgentSandbox is an agent's sandbox sizing; a nil field means the default.
type AgentSandbox struct {
	CPU       *float64 `json:"cpu,omitempty"`
	MemoryMiB *int     `json:"memoryMiB,omitempty"`
}

// An agent is one hash {data: JSON, version}; an organization's live agents
// are a sorted set of ids scored by Seq. Both keys carry the organization as
// hash tag, so they share a cluster slot and one org cannot name another's.
func (s *Store) agentKey(org, id string) string { return s.prefix + ":{org:" + org + "}:agent:" + id }
func (s *Store) agentsKey(org string) string    { return s.prefix + ":{org:" + org + "}:agents" }

var lastSeq atomic.Int64

func nextSeq(now time.Time) int64 {
	for {
		last, seq := lastSeq.Load(), now.UnixMicro()
		if seq <= last {
			seq = last + 1
		}
		if lastSeq.CompareAndSwap(last, seq) {
			return seq
		}
	}
}

// CreateAgent stores a new agent; it sets its Seq and makes it active.
func (s *Store) CreateAgent(ctx context.Context, a *Agent) error {
	a.Seq = nextSeq(a.CreatedAt)
	a.Active = true
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode agent: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.agentKey(a.Org, a.ID), "data", data, "version", 1)
		p.ZAdd(ctx, s.agentsKey(a.Org), redis.Z{Score: float64(a.Seq), Member: a.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create agent %s: %w", a.ID, err)
	}
	return nil
}

// GetAgent reads an agent of an organization, deleted ones included.
func (s *Store) GetAgent(ctx context.Context, org, id string) (*Agent, error) {
	a, _, err := s.getAgent(ctx, org, id)
	return a, err
}

func (s *Store) getAgent(ctx context.Context, org, id string) (*Agent, string, error) {
	h, err := s.rdb.HMGet(ctx, s.agentKey(org, id), "data", "version").Result()
	if err != nil {
		return nil, "", fmt.Errorf("get agent %s: %w", id, err)
	}
	data, _ := h[0].(string)
	version, _ := h[1].(string)
	if data == "" {
		return nil, "", ErrAgentNotFound
	}
	a := new(Agent)
	if err := json.Unmarshal([]byte(data), a); err != nil {
		return nil, "", fmt.Errorf("decode agent %s: %w", id, err)
	}
	return a, version, nil
}

// saveAgentScript writes an agent if it is still at the version read (a
// compare-and-set, so concurrent PATCHes never lose each other's fields), and
// takes a deleted agent out of the listing. KEYS: agent, index. ARGV: version,
// data, id, expiry ms (0: keep, else remove from the index and expire).
var saveAgentScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', tonumber(v) + 1)
if tonumber(ARGV[4]) > 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
`)

// UpdateAgent applies change to an agent and stores the result, retrying on a
// concurrent update. If change returns an error, nothing is stored. An agent
// that change makes inactive leaves the listing, and its record expires after
// the store's retention (its runs expire no later).
func (s *Store) UpdateAgent(ctx context.Context, org, id string, change func(*Agent) error) (*Agent, error) {
	for range 10 {
		a, version, err := s.getAgent(ctx, org, id)
		if err != nil {
			return nil, err
		}
		wasActive := a.Active
		if err := change(a); err != nil {
			return nil, err
		}
		data, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encode agent: %w", err)
		}
		var expire int64
		if wasActive && !a.Active {
			expire = s.retention.Milliseconds()
		}
		n, err := saveAgentScript.Run(ctx, s.rdb, []string{s.agentKey(org, id), s.agentsKey(org)}, version, data, id, expire).Int()
		switch {
		case err != nil:
			return nil, fmt.Errorf("update agent %s: %w", id, err)
		case n < 0:
			return nil, ErrAgentNotFound
		case n > 0:
			return a, nil
		}
	}
	return nil, fmt.Errorf("update agent %s: too many concurrent updates; retry", id)
}

// ListAgents returns an organization's live agents, newest first: at most
// limit of them after the agent named by cursor (from the start if empty),
// and whether more follow.
func (s *Store) ListAgents(ctx context.Context, org, cursor string, limit int) ([]*Agent, bool, error) {
	// Members are ordered by (Seq, id), both descending. After the cursor
	// come the lower scores, and the lower ids of the same score.
	key := s.agentsKey(org)
	max, cursorSeq := "+inf", float64(0)
	if cursor != "" {
		// The index orders; a deleted cursor has left it, its record keeps Seq.
		score, err := s.rdb.ZScore(ctx, key, cursor).Result()
		if errors.Is(err, redis.Nil) {
			var c *Agent
			if c, err = s.GetAgent(ctx, org, cursor); err == nil {
				score = float64(c.Seq)
			}
		}
		if err != nil {
			return nil, false, fmt.Errorf("cursor: %w", err)
		}
		cursorSeq = score
		max = strconv.FormatFloat(score, 'f', -1, 64)
	}
	var ids []string
	for offset := int64(0); len(ids) <= limit; {
		batch := int64(limit + 1)
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Max: max, Min: "-inf", Offset: offset, Count: batch}).Result()
		if err != nil {
			return nil, false, fmt.Errorf("list agents: %w", err)
		}
		for _, z := range zs {
			id, _ := z.Member.(string)
			if cursor != "" && z.Score == cursorSeq && id >= cursor {
				continue
			}
			ids = append(ids, id)
		}
		if int64(len(zs)) < batch {
			break
		}
		offset += batch
	}
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	if len(ids) == 0 {
		return []*Agent{}, false, nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.HGet(ctx, s.agentKey(org, id), "data")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("list agents: %w", err)
	}
	agents := make([]*Agent, 0, len(ids))
	for _, cmd := range cmds {
		data, err := cmd.(*redis.StringCmd).Result()
		if err != nil {
			continue // deleted meanwhile
		}
		a := new(Agent)
		if err := json.Unmarshal([]byte(data), a); err != nil {
			return nil, false, fmt.Errorf("decode agent: %w", err)
		}
		if a.Active {
			agents = append(agents, a)
		}
	}
	return agents, more, nil
}
