package run

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrBadCursor is returned by List for a cursor that is not in the listing
// (it expired, or belongs to another listing).
var ErrBadCursor = errors.New("cursor not in this listing")

// ListQuery selects runs of one organization, newest first.
type ListQuery struct {
	Org     string
	AgentID string // only this persistent agent's runs; "" for all
	Status  Status // only runs in this state; "" for all
	Limit   int    // at most this many; at least 1
	Cursor  string // start after this run id, the last of the previous page
}

// Summary is a run as listings show it.
type Summary struct {
	ID          string
	AgentID     string
	Status      Status
	Prompt      string // its first 200 characters
	Model       string
	CreatedAt   time.Time
	StartedAt   time.Time
	CompletedAt time.Time
}

// Page is one page of a listing. Next is the cursor of the next page when
// HasMore.
type Page struct {
	Runs    []Summary
	HasMore bool
	Next    string
}

// listScan bounds the index entries one List call reads, so that a filter
// that matches little cannot make one request read everything: the page is
// then shorter than asked, with HasMore and a cursor to go on.
const listScan = 2000

var summaryFields = []string{fID, fAgentID, fOrg, fStatus, fPromptHead, fModel, fCreatedAt, fStartedAt, fCompletedAt}

// List returns a page of an organization's runs, newest first. Index entries
// whose record has expired are skipped and removed.
func (s *Store) List(ctx context.Context, q ListQuery) (*Page, error) {
	key := s.orgIndexKey(q.Org)
	if q.AgentID != "" {
		key = s.agentIndexKey(q.Org, q.AgentID)
	}
	limit := max(q.Limit, 1)
	var start int64
	if q.Cursor != "" {
		rank, err := s.rdb.ZRevRank(ctx, key, q.Cursor).Result()
		if errors.Is(err, redis.Nil) {
			return nil, ErrBadCursor
		}
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		start = rank + 1
	}
	page := &Page{Runs: []Summary{}}
	chunk := int64(max(limit+1, 100))
	scanned := 0
	var last string
	for scanned < listScan {
		ids, err := s.rdb.ZRevRange(ctx, key, start, start+chunk-1).Result()
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		if len(ids) == 0 {
			return page, nil
		}
		start += int64(len(ids))
		cmds := make([]*redis.SliceCmd, len(ids))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HMGet(ctx, s.recordKey(id), summaryFields...)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		var gone []any
		for i, cmd := range cmds {
			scanned++
			last = ids[i]
			v := cmd.Val()
			str := func(j int) string { x, _ := v[j].(string); return x }
			if str(0) == "" {
				gone = append(gone, ids[i])
				continue
			}
			if str(2) != q.Org || (q.Status != "" && Status(str(3)) != q.Status) {
				continue
			}
			if len(page.Runs) == limit {
				// One more matches: there is a next page, after the last shown.
				page.HasMore, page.Next = true, page.Runs[limit-1].ID
				s.forget(ctx, key, gone)
				return page, nil
			}
			page.Runs = append(page.Runs, Summary{
				ID: str(0), AgentID: str(1), Status: Status(str(3)), Prompt: str(4), Model: str(5),
				CreatedAt: parseTime(str(6)), StartedAt: parseTime(str(7)), CompletedAt: parseTime(str(8)),
			})
		}
		s.forget(ctx, key, gone)
		if len(ids) < int(chunk) {
			return page, nil
		}
	}
	// Scanned as much as one call may: go on from the last entry read.
	page.HasMore, page.Next = true, last
	return page, nil
}

// forget removes index entries whose record has expired.
func (s *Store) forget(ctx context.Context, key string, ids []any) {
	if len(ids) > 0 {
		s.rdb.ZRem(ctx, key, ids...) // best effort: the next listing skips them too
	}
}
