package service

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/oneshot-dev/oneshot/worker"
)

const toolLegalResearchSearch = "legal-research.search"

// legalResearchSearch POSTs {query, jurisdiction, limit} to the legal
// research backend and returns its answer as text.
func legalResearchSearch(b *backend) HandlerFunc {
	return func(ctx context.Context, call worker.HostToolCall) (string, error) {
		if err := b.ready(toolLegalResearchSearch); err != nil {
			return "", err
		}
		var in struct {
			Query        string `json:"query"`
			Jurisdiction string `json:"jurisdiction"`
			Limit        int    `json:"limit"`
		}
		if err := decodeInput(call.Input, &in); err != nil {
			return "", err
		}
		if err := required("query", in.Query); err != nil {
			return "", err
		}
		body := struct {
			Query        string `json:"query"`
			Jurisdiction string `json:"jurisdiction,omitempty"`
			Limit        int    `json:"limit"`
		}{in.Query, in.Jurisdiction, clampLimit(in.Limit, 10, 100)}
		a, err := b.do(ctx, call.RunID, http.MethodPost, "", body)
		if err != nil {
			return "", err
		}
		return a.text(), nil
	}
}

// decodeInput decodes a tool's JSON input.
func decodeInput(input []byte, v any) error {
	if len(input) == 0 {
		input = []byte("{}")
	}
	if err := json.Unmarshal(input, v); err != nil {
		return refuse(ErrInvalidInput, "invalid arguments: %v", err)
	}
	return nil
}
