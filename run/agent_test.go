package run_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/oneshot-dev/oneshot/run"
)

func newAgent(org, name string) *run.Agent {
	now := time.Now()
	return &run.Agent{ID: run.NewID("agent"), Org: org, Name: name, Instructions: "i", CreatedAt: now, UpdatedAt: now}
}

// Agents made in the same microsecond by two API replicas share a score: the
// pages still hold each agent exactly once.
func TestListAgentsPagesThroughTies(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	for i := range 9 {
		require.NoError(t, s.CreateAgent(ctx, newAgent("acme", fmt.Sprint(i))))
	}
	require.NoError(t, s.CreateAgent(ctx, newAgent("globex", "other")))
	// Give every acme agent the same score.
	index := "oneshot:{org:acme}:agents"
	ids, err := r.Client(t).ZRange(ctx, index, 0, -1).Result()
	require.NoError(t, err)
	for _, id := range ids {
		require.NoError(t, r.Client(t).ZAdd(ctx, index, redis.Z{Score: 42, Member: id}).Err())
	}

	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 10, "pages never end")
		agents, more, err := s.ListAgents(ctx, "acme", cursor, 2)
		require.NoError(t, err)
		for _, a := range agents {
			require.False(t, seen[a.ID], "agent %s listed twice", a.ID)
			seen[a.ID] = true
			require.Equal(t, "acme", a.Org)
		}
		if !more {
			break
		}
		cursor = agents[len(agents)-1].ID
	}
	require.Len(t, seen, 9)
}

// Concurrent updates of one agent never lose each other's changes.
func TestUpdateAgentConcurrently(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	a := newAgent("acme", "a")
	require.NoError(t, s.CreateAgent(ctx, a))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := s.UpdateAgent(ctx, "acme", a.ID, func(a *run.Agent) error {
				a.VaultIDs = append(a.VaultIDs, fmt.Sprint("vault_", i))
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := s.GetAgent(ctx, "acme", a.ID)
	require.NoError(t, err)
	require.Len(t, got.VaultIDs, 8)

	_, err = s.GetAgent(ctx, "globex", a.ID)
	require.ErrorIs(t, err, run.ErrAgentNotFound, "another organization does not see it")
}
