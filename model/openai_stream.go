package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// readOpenAIStream assembles a streamed Chat Completion: chunks of
// choices[0].delta with content, reasoning and tool_calls fragments (keyed
// by index; the first fragment of a call carries its id and name), then a
// chunk with finish_reason, a chunk with usage and no choices (asked for with
// stream_options.include_usage), and "data: [DONE]".
func readOpenAIStream(provider string, resp *http.Response, out *output) (*Response, error) {
	var (
		sse             = newSSEReader(resp.Body)
		text, reasoning strings.Builder
		calls           []openaiToolCall
		callArgs        []*strings.Builder
		finish          *string
		usage           *openaiUsage
	)
	done := func() (*Response, error) {
		for i := range calls {
			calls[i].Function.Arguments = callArgs[i].String()
		}
		return openaiResponse(reasoning.String(), text.String(), calls, finish, usage)
	}
	for {
		ev, err := sse.Next()
		if errors.Is(err, io.EOF) {
			if finish != nil {
				return done() // some servers end without [DONE]
			}
			err = errors.New("ended before [DONE]")
		}
		if err != nil {
			return nil, out.interrupted(err)
		}
		if strings.TrimSpace(ev.Data) == "[DONE]" {
			return done()
		}
		var c openaiCompletion
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
			return nil, fmt.Errorf("%w: chunk: %w (data starts %q)", ErrMalformedResponse, err, prefix([]byte(ev.Data), 120))
		}
		if c.Error != nil {
			apiErr := c.Error.apiError(provider, 0)
			if apiErr.Retryable() && !out.delivered {
				return nil, &temporary{err: apiErr}
			}
			return nil, apiErr
		}
		if c.Usage != nil {
			usage = c.Usage
		}
		if len(c.Choices) == 0 {
			continue
		}
		ch := c.Choices[0]
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			finish = ch.FinishReason
		}
		d := ch.Delta
		if r := d.ReasoningContent + d.Reasoning; r != "" {
			reasoning.WriteString(r)
			out.thinking(r)
		}
		if s := d.text(); s != "" {
			text.WriteString(s)
			out.text(s)
		}
		for _, tc := range d.ToolCalls {
			i := len(calls) - 1
			switch {
			case tc.Index != nil && *tc.Index >= 0 && *tc.Index < len(calls) && (tc.ID == "" || tc.ID == calls[*tc.Index].ID):
				i = *tc.Index // a fragment of a known call
			case tc.ID != "" || tc.Function.Name != "" || len(calls) == 0:
				// A new call; servers that number none or reuse index 0
				// still give each call its own id.
				calls = append(calls, openaiToolCall{ID: tc.ID, Type: "function"})
				callArgs = append(callArgs, &strings.Builder{})
				i = len(calls) - 1
			}
			if tc.Function.Name != "" {
				calls[i].Function.Name = tc.Function.Name
			}
			callArgs[i].WriteString(tc.Function.Arguments)
		}
	}
}
