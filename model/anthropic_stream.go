package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// anthropicEvent is one event of a Messages API stream: message_start,
// content_block_start|delta|stop, message_delta, message_stop, ping, error.
type anthropicEvent struct {
	Type         string           `json:"type"`
	Message      anthropicMessage `json:"message"`
	Index        int              `json:"index"`
	ContentBlock anthropicBlock   `json:"content_block"`
	Delta        struct {
		Type        string `json:"type"` // text_delta | input_json_delta | thinking_delta | signature_delta
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		Thinking    string `json:"thinking"`
		Signature   string `json:"signature"`
		StopReason  string `json:"stop_reason"` // in message_delta
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error *wireError      `json:"error"`
}

// anthropicBlockState is a content block being streamed.
type anthropicBlockState struct {
	block                 anthropicBlock
	text, thinking, input strings.Builder
}

// readAnthropicStream assembles a streamed answer into the message a whole
// answer would have been, passing text and thinking on to out as they come.
func readAnthropicStream(resp *http.Response, out *output) (*Response, error) {
	var (
		sse    = newSSEReader(resp.Body)
		msg    anthropicMessage
		blocks []*anthropicBlockState
		byIdx  = map[int]*anthropicBlockState{}
	)
	for {
		ev, err := sse.Next()
		if errors.Is(err, io.EOF) {
			err = errors.New("ended before message_stop")
		}
		if err != nil {
			return nil, out.interrupted(err)
		}
		var e anthropicEvent
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			return nil, fmt.Errorf("%w: event %q: %w", ErrMalformedResponse, ev.Event, err)
		}
		if e.Type == "" {
			e.Type = ev.Event
		}
		var b *anthropicBlockState
		if e.Type == "content_block_delta" || e.Type == "content_block_stop" {
			if b = byIdx[e.Index]; b == nil {
				return nil, fmt.Errorf("%w: %s for block %d, which never started", ErrMalformedResponse, e.Type, e.Index)
			}
		}
		switch e.Type {
		case "message_start":
			msg.Usage = e.Message.Usage
		case "content_block_start":
			b = &anthropicBlockState{block: e.ContentBlock}
			b.text.WriteString(e.ContentBlock.Text)
			b.thinking.WriteString(e.ContentBlock.Thinking)
			byIdx[e.Index] = b
			blocks = append(blocks, b)
		case "content_block_delta":
			switch e.Delta.Type {
			case "text_delta":
				b.text.WriteString(e.Delta.Text)
				out.text(e.Delta.Text)
			case "thinking_delta":
				b.thinking.WriteString(e.Delta.Thinking)
				out.thinking(e.Delta.Thinking)
			case "input_json_delta":
				b.input.WriteString(e.Delta.PartialJSON)
			case "signature_delta":
				b.block.Signature = e.Delta.Signature
			}
		case "message_delta":
			msg.StopReason = e.Delta.StopReason
			if u := e.Usage; u != nil {
				if msg.Usage == nil {
					msg.Usage = &anthropicUsage{}
				}
				msg.Usage.OutputTokens = u.OutputTokens // a running total
				if u.InputTokens > 0 {
					msg.Usage.InputTokens, msg.Usage.CacheCreationInputTokens, msg.Usage.CacheReadInputTokens =
						u.InputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens
				}
			}
		case "message_stop":
			for _, b := range blocks {
				b.block.Text, b.block.Thinking = b.text.String(), b.thinking.String()
				if b.input.Len() > 0 {
					b.block.Input = json.RawMessage(b.input.String())
				}
				msg.Content = append(msg.Content, b.block)
			}
			return msg.response()
		case "error":
			if e.Error == nil {
				return nil, fmt.Errorf("%w: error event without error: %s", ErrMalformedResponse, prefix([]byte(ev.Data), 120))
			}
			apiErr := e.Error.apiError("anthropic", 0)
			if apiErr.Retryable() && !out.delivered {
				return nil, &temporary{err: apiErr}
			}
			return nil, apiErr
		}
		// ping, content_block_stop and events added later need nothing.
	}
}
