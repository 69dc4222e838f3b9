package service

import (
	"context"
	"net/http"
	"sort"

	"github.com/oneshot-dev/oneshot/worker"
)

const toolVaultSearch = "vault.search"

// search searches the run's vaults (or the one named) and merges the results,
// best score first when every result has one; results outside the run's
// objects are dropped.
func (v *vaults) search(ctx context.Context, call worker.HostToolCall) (string, error) {
	var in struct {
		Query   string `json:"query"`
		Limit   int    `json:"limit"`
		VaultID string `json:"vaultId"`
	}
	if err := decodeInput(call.Input, &in); err != nil {
		return "", err
	}
	s, err := v.scopeOf(toolVaultSearch, call, in.VaultID)
	if err != nil {
		return "", err
	}
	if err := required("query", in.Query); err != nil {
		return "", err
	}
	limit := clampLimit(in.Limit, 10, 100)
	body := struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
		// ObjectIDs lets the backend search only the run's objects; the
		// results are filtered here all the same.
		ObjectIDs []string `json:"objectIds,omitempty"`
	}{in.Query, limit, s.objects}

	results := []item{}
	for _, id := range s.vaults {
		a, err := v.backend.do(ctx, call.RunID, http.MethodPost, vaultPath(id, "/search"), body)
		if err != nil {
			return "", err
		}
		items, err := parseItems(a, "results", "chunks", "items", "data")
		if err != nil {
			return "", err
		}
		results = append(results, s.keep(items, id)...)
	}
	if len(s.vaults) > 1 && allScored(results) {
		sort.SliceStable(results, func(i, j int) bool {
			a, _ := results[i].score()
			b, _ := results[j].score()
			return a > b
		})
	}
	if len(results) > limit {
		results = results[:limit]
	}
	return jsonText(map[string]any{"results": results, "count": len(results)})
}

func allScored(items []item) bool {
	for _, it := range items {
		if _, ok := it.score(); !ok {
			return false
		}
	}
	return true
}
