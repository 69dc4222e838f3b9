package service

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/oneshot-dev/oneshot/worker"
)

const toolVaultRead = "vault.read"

// read returns the text of one object of the run, a window of it at a time.
//
// The object must be in the run's scope: one of its objectIds when it names
// any (checked here, no backend call), else an object of one of its vaults
// (checked against the vaults' object lists). Only then is the text fetched.
func (v *vaults) read(ctx context.Context, call worker.HostToolCall) (string, error) {
	var in struct {
		ObjectID string `json:"objectId"`
		Offset   int    `json:"offset"`
	}
	if err := decodeInput(call.Input, &in); err != nil {
		return "", err
	}
	s, err := v.scopeOf(toolVaultRead, call, "")
	if err != nil {
		return "", err
	}
	if err := required("objectId", in.ObjectID); err != nil {
		return "", err
	}
	if len(s.objects) > 0 {
		if !s.allows(in.ObjectID) {
			return "", refuse(ErrOutOfScope, "object %q is not one of this run's objects", in.ObjectID)
		}
	} else if err := v.checkInVaults(ctx, call.RunID, s, in.ObjectID); err != nil {
		return "", err
	}

	a, err := v.backend.do(ctx, call.RunID, http.MethodGet, "/objects/"+url.PathEscape(in.ObjectID)+"/text", nil)
	if err != nil {
		return "", err
	}
	return window(a.text(), in.Offset, v.window), nil
}

// checkInVaults refuses an object that is in none of the scope's vaults.
func (v *vaults) checkInVaults(ctx context.Context, runID string, s scope, objectID string) error {
	for _, id := range s.vaults {
		items, err := v.objects(ctx, runID, id)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.objectID() == objectID {
				return nil
			}
		}
	}
	return refuse(ErrOutOfScope, "object %q is not in the vaults attached to this run", objectID)
}

// text returns an answer as text: a JSON answer's "text" field if it has one,
// else the body, with a note when it was cut.
func (a *answer) text() string {
	s := string(a.body)
	if mt, _, _ := mime.ParseMediaType(a.contentType); mt == "application/json" {
		var doc struct {
			Text *string `json:"text"`
		}
		if json.Unmarshal(a.body, &doc) == nil && doc.Text != nil {
			s = *doc.Text
		}
	}
	if a.truncated {
		s += fmt.Sprintf("\n[the backend's answer was cut at %d bytes]", len(a.body))
	}
	return s
}

// window returns size bytes of s from offset, cut at rune boundaries, with a
// note saying where to read on.
func window(s string, offset, size int) string {
	offset = max(offset, 0)
	if offset == 0 && len(s) <= size {
		return s
	}
	if offset >= len(s) {
		return fmt.Sprintf("[offset %d is past the end of the text (%d bytes)]", offset, len(s))
	}
	for offset > 0 && !utf8.RuneStart(s[offset]) {
		offset--
	}
	end := min(offset+size, len(s))
	for end < len(s) && !utf8.RuneStart(s[end]) {
		end--
	}
	out := s[offset:end]
	if end < len(s) {
		out += fmt.Sprintf("\n[showing bytes %d-%d of %d; read on with offset %d]", offset, end, len(s), end)
	}
	return out
}
