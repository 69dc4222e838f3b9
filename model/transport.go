package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxBody bounds a whole (not streamed) answer; maxErrorBody an error answer.
const (
	maxBody      = 64 << 20
	maxErrorBody = 64 << 10
)

// transport posts JSON to one provider endpoint. It is shared by the
// Anthropic and OpenAI-compatible providers.
type transport struct {
	provider  string // name in errors and metrics
	url       string
	client    *http.Client
	header    http.Header // auth and protocol headers, set on every request
	requestID string      // response header with the provider's request id
	retry     retryPolicy
}

// post sends body and returns the response of a 2xx answer. A transport
// failure or a 429/5xx comes back *temporary; other statuses an *APIError.
func (t *transport) post(ctx context.Context, body []byte, stream bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// Nothing of the answer arrived: the request may be sent again.
		return nil, &temporary{err: fmt.Errorf("send request: %w", err)}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	apiErr := parseAPIError(t.provider, resp.StatusCode, raw, resp.Header.Get(t.requestID))
	if !apiErr.Retryable() {
		return nil, apiErr
	}
	after, said := retryAfter(resp.Header, time.Now())
	return nil, &temporary{err: apiErr, after: after, serverSaid: said}
}

// readJSON decodes a whole answer into v. A body cut short is an
// interruption; a body that is not JSON is malformed.
func readJSON(resp *http.Response, out *output, v any) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return out.interrupted(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: decode body: %w (body starts %q)", ErrMalformedResponse, err, prefix(raw, 120))
	}
	return nil
}

// isEventStream tells a streamed answer from a whole one: a proxy or a
// server that ignores "stream" may answer with a JSON document instead.
func isEventStream(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return ct == "" || strings.HasPrefix(ct, "text/event-stream")
}

func prefix(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// compactJSON checks that raw is one JSON object and returns it compacted, so
// that streamed and whole answers give the same bytes; empty means {}.
func compactJSON(raw string) (json.RawMessage, error) {
	if strings.TrimSpace(raw) == "" {
		return json.RawMessage("{}"), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(raw)); err != nil {
		return nil, err
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, fmt.Errorf("not a JSON object: %s", prefix(buf.Bytes(), 60))
	}
	return buf.Bytes(), nil
}
