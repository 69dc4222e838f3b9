package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/oneshot-dev/oneshot/worker"
)

// vaults runs the vault tools against the vault backend:
//
//	GET  {url}/vaults/{vaultId}/objects  -> {"objects":[{"id":..., ...}]}
//	POST {url}/vaults/{vaultId}/search   {query, limit, objectIds} -> {"results":[{"objectId":..., ...}]}
//	GET  {url}/objects/{objectId}/text   -> the text
//
// A run sees only its scope: the vaults of call.VaultIDs, and of those only
// the objects of call.ObjectIDs when it names any. Calls outside the scope
// are refused before they reach the backend, and answers are filtered to it.
type vaults struct {
	backend *backend
	window  int // bytes of text vault.read returns at a time
}

// scope is what one call may see.
type scope struct {
	vaults  []string
	objects []string // empty: every object of the vaults
}

func (s scope) allows(objectID string) bool {
	return len(s.objects) == 0 || slices.Contains(s.objects, objectID)
}

// scopeOf checks that the backend is configured and the run has vaults, and
// narrows the scope to vaultID when the model names one.
func (v *vaults) scopeOf(tool string, call worker.HostToolCall, vaultID string) (scope, error) {
	if err := v.backend.ready(tool); err != nil {
		return scope{}, err
	}
	s := scope{vaults: compact(call.VaultIDs), objects: compact(call.ObjectIDs)}
	if len(s.vaults) == 0 {
		return scope{}, refuse(ErrOutOfScope, "no vault is attached to this run: %s has nothing to work on", tool)
	}
	if vaultID != "" {
		if !slices.Contains(s.vaults, vaultID) {
			return scope{}, refuse(ErrOutOfScope, "vault %q is not attached to this run; its vaults are: %s", vaultID, strings.Join(s.vaults, ", "))
		}
		s.vaults = []string{vaultID}
	}
	return s, nil
}

// compact drops empty and repeated ids, keeping the order.
func compact(ids []string) []string {
	var out []string
	for _, id := range ids {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func vaultPath(vaultID, rest string) string { return "/vaults/" + url.PathEscape(vaultID) + rest }

// item is one object or search result of a backend answer.
type item map[string]json.RawMessage

// objectID returns the id of the object an item is or comes from.
func (it item) objectID() string {
	for _, k := range []string{"objectId", "object_id", "id"} {
		var s string
		if raw, ok := it[k]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// score returns an item's relevance score, if it has one.
func (it item) score() (float64, bool) {
	var f float64
	raw, ok := it["score"]
	return f, ok && json.Unmarshal(raw, &f) == nil
}

// parseItems reads the list of items in an answer: a bare array, or an
// array under one of keys.
func parseItems(a *answer, keys ...string) ([]item, error) {
	if a.truncated {
		return nil, fmt.Errorf("vault backend: the answer is over %d bytes; narrow the request", len(a.body))
	}
	body := bytes.TrimSpace(a.body)
	var list []item
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("vault backend: unexpected answer: %v", err)
		}
		return list, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("vault backend: the answer is not JSON: %v", err)
	}
	for _, k := range keys {
		if raw, ok := obj[k]; ok {
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, fmt.Errorf("vault backend: unexpected %q in the answer: %v", k, err)
			}
			return list, nil
		}
	}
	return nil, fmt.Errorf("vault backend: the answer has no %s list", strings.Join(keys, " or "))
}

// keep returns the items in the scope, each marked with its vault. Items
// without an object id are dropped when the scope names objects: what cannot
// be checked is not shown.
func (s scope) keep(items []item, vaultID string) []item {
	out := items[:0]
	for _, it := range items {
		if it == nil || !s.allows(it.objectID()) {
			continue
		}
		if _, ok := it["vaultId"]; !ok {
			it["vaultId"], _ = json.Marshal(vaultID)
		}
		out = append(out, it)
	}
	return out
}

// jsonText renders a tool's answer for the model.
func jsonText(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", " ")
	return string(b), err
}
