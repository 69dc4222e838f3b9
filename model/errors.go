package model

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Errors a provider call can fail with besides *APIError; test with errors.Is.
var (
	// ErrMalformedResponse: the provider answered 200 with a body that is not
	// what its protocol promises. Not retried.
	ErrMalformedResponse = errors.New("malformed response")
	// ErrStreamInterrupted: the stream broke (connection dropped, or it ended
	// before its end marker). Retried only while no delta had been delivered.
	ErrStreamInterrupted = errors.New("stream interrupted")
)

// APIError is an error answer from a provider: an HTTP status other than 2xx,
// or an error event inside a stream (then Status is 0).
type APIError struct {
	Provider  string // provider name: "anthropic", "openai", "gateway"
	Status    int    // HTTP status; 0 for an error event inside a 200 stream
	Type      string // provider's error type, e.g. "overloaded_error", "invalid_request_error"
	Code      string // provider's error code when it sends one, e.g. "rate_limit_exceeded"
	Message   string // provider's own message
	RequestID string // provider's request id, for its support
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Status)
		if text := http.StatusText(e.Status); text != "" {
			b.WriteString(" " + text)
		}
	}
	for _, s := range []string{e.Type, e.Code} {
		if s != "" {
			b.WriteString(": " + s)
		}
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later: rate limits
// (429), server errors (5xx, Anthropic's 529 overloaded) and, inside a
// stream, overload and server error events.
func (e *APIError) Retryable() bool {
	if e.Status != 0 {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	switch e.Type {
	case "overloaded_error", "api_error", "rate_limit_error", "server_error":
		return true
	}
	switch e.Code {
	case "429", "500", "502", "503", "504", "529", "rate_limit_exceeded", "server_error":
		return true
	}
	return false
}

// wireError is the error object both protocols send: Anthropic's
// {"type":"error","error":{"type","message"}} and OpenAI's
// {"error":{"message","type","param","code"}}; code may be a string or a number.
type wireError struct {
	Type    string          `json:"type"`
	Message string          `json:"message"`
	Code    json.RawMessage `json:"code"`
}

func (w *wireError) apiError(provider string, status int) *APIError {
	return &APIError{Provider: provider, Status: status, Type: w.Type, Code: rawString(w.Code), Message: w.Message}
}

// parseAPIError turns an error answer into an *APIError, whatever shape its
// body has: the protocols' nested error object, a bare {"message"} as some
// OpenAI-compatible servers send, or text (a proxy's HTML page, cut short).
func parseAPIError(provider string, status int, body []byte, requestID string) *APIError {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Type    string          `json:"type"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
		Code    json.RawMessage `json:"code"`
	}
	e := &APIError{Provider: provider, Status: status, RequestID: requestID}
	if json.Unmarshal(body, &v) == nil {
		var w wireError
		if json.Unmarshal(v.Error, &w) == nil && w.Message != "" {
			e.Type, e.Code, e.Message = w.Type, rawString(w.Code), w.Message
			return e
		}
		e.Type, e.Code = v.Type, rawString(v.Code)
		e.Message = cmp.Or(v.Message, rawString(v.Error), rawString(v.Detail))
		if e.Type == "error" { // Anthropic's envelope type, not a kind
			e.Type = ""
		}
		if e.Message != "" {
			return e
		}
	}
	e.Message = strings.Join(strings.Fields(string(body)), " ")
	if len(e.Message) > 300 {
		e.Message = e.Message[:300] + "…"
	}
	return e
}

// rawString renders a JSON string or number as text; anything else as "".
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if _, err := strconv.ParseFloat(string(n), 64); err == nil {
			return string(n)
		}
	}
	return ""
}
