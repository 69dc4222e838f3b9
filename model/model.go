// Package model talks to model providers on behalf of the worker.
//
// Model ids are "provider/name". The runtime inside the sandbox never holds a
// key: it sends a Request over its protocol, and the worker answers it through a
// Provider chosen by the Router.
package model

import (
	"context"

	"github.com/oneshot-dev/oneshot/chat"
)

// The conversation's vocabulary lives in package chat, which the runtime
// shares; these aliases let the worker's code speak of model.Request.
type (
	Part     = chat.Part
	Message  = chat.Message
	Tool     = chat.Tool
	Request  = chat.Request
	Usage    = chat.Usage
	Response = chat.Response
	Delta    = chat.Delta
)

// Part types.
const (
	PartText       = chat.PartText
	PartThinking   = chat.PartThinking
	PartToolCall   = chat.PartToolCall
	PartToolResult = chat.PartToolResult
)

// Message roles.
const (
	RoleUser      = chat.RoleUser
	RoleAssistant = chat.RoleAssistant
)

// Stop reasons.
const (
	StopEndTurn   = chat.StopEndTurn
	StopToolUse   = chat.StopToolUse
	StopMaxTokens = chat.StopMaxTokens
)

// Retry describes a retry a provider is about to make: Attempt counts retries
// from 1 to MaxAttempts, DelayMs is the wait before it, Error why it is needed.
type Retry struct {
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"maxAttempts"`
	DelayMs     int64  `json:"delayMs"`
	Error       string `json:"errorMessage"`
}

// Hooks observe a call while it runs. Nil fields are skipped. They are called
// from the goroutine that called Complete, never after Complete returns.
type Hooks struct {
	DeltaFunc func(Delta)
	RetryFunc func(Retry)
}

// Provider answers model requests for the models of one provider.
type Provider interface {
	// Name is the provider part of the model ids it serves, e.g. "anthropic".
	Name() string
	Complete(ctx context.Context, req Request, hooks Hooks) (*Response, error)
}
