package service

import (
	"context"
	"net/http"

	"github.com/oneshot-dev/oneshot/worker"
)

const toolVaultList = "vault.list"

// list lists the objects of the run's vaults (or of the one named), filtered
// to the run's objects when it has any.
func (v *vaults) list(ctx context.Context, call worker.HostToolCall) (string, error) {
	var in struct {
		VaultID string `json:"vaultId"`
	}
	if err := decodeInput(call.Input, &in); err != nil {
		return "", err
	}
	s, err := v.scopeOf(toolVaultList, call, in.VaultID)
	if err != nil {
		return "", err
	}
	objects := []item{}
	for _, id := range s.vaults {
		items, err := v.objects(ctx, call.RunID, id)
		if err != nil {
			return "", err
		}
		objects = append(objects, s.keep(items, id)...)
	}
	return jsonText(map[string]any{"objects": objects, "count": len(objects)})
}

// objects fetches the object list of one vault.
func (v *vaults) objects(ctx context.Context, runID, vaultID string) ([]item, error) {
	a, err := v.backend.do(ctx, runID, http.MethodGet, vaultPath(vaultID, "/objects"), nil)
	if err != nil {
		return nil, err
	}
	return parseItems(a, "objects", "items", "data")
}
