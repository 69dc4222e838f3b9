package model

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry defaults, for the fields of AnthropicConfig, OpenAIConfig and Config.
const (
	DefaultMaxRetries     = 4
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 30 * time.Second
)

// retryPolicy bounds the retries of one call.
type retryPolicy struct {
	max      int           // retries after the first attempt
	base     time.Duration // delay before the first retry, doubled for each next one
	maxDelay time.Duration // cap of one delay, the server's included
}

// newRetryPolicy fills the defaults: zero means default, a negative
// maxRetries means no retry.
func newRetryPolicy(maxRetries int, base, maxDelay time.Duration) retryPolicy {
	p := retryPolicy{
		max:      cmp.Or(maxRetries, DefaultMaxRetries),
		base:     cmp.Or(base, DefaultRetryBaseDelay),
		maxDelay: cmp.Or(maxDelay, DefaultRetryMaxDelay),
	}
	p.max = max(p.max, 0)
	return p
}

// delay is the wait before retry n (1-based): the server's wish when it said
// one, else base·2^(n-1) less up to a quarter of jitter, so that callers that
// failed together do not come back together. Both are capped at maxDelay.
func (p retryPolicy) delay(n int, serverSaid bool, server time.Duration) time.Duration {
	if serverSaid {
		return min(server, p.maxDelay)
	}
	d := p.base
	for i := 1; i < n && d < p.maxDelay; i++ {
		d *= 2
	}
	d = min(d, p.maxDelay)
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// retryAfter reads how long the server asks to wait: retry-after-ms
// (OpenAI, milliseconds), else Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// temporary marks an error another attempt may cure, with the server's wish.
type temporary struct {
	err        error
	after      time.Duration
	serverSaid bool
}

func (t *temporary) Error() string { return t.err.Error() }
func (t *temporary) Unwrap() error { return t.err }

// output passes deltas on to the hooks and remembers whether any went out:
// after that a failed call is not retried, since its text is already shown.
type output struct {
	deltaFunc func(Delta)
	delivered bool
}

func (o *output) text(s string)     { o.send(Delta{Text: s}) }
func (o *output) thinking(s string) { o.send(Delta{Thinking: s}) }

func (o *output) send(d Delta) {
	if o.deltaFunc == nil || d == (Delta{}) {
		return
	}
	o.delivered = true
	o.deltaFunc(d)
}

// interrupted is the error for a stream that broke: retried while nothing
// had been delivered, final after.
func (o *output) interrupted(cause error) error {
	if o.delivered {
		return fmt.Errorf("%w after output was delivered, not retried: %w", ErrStreamInterrupted, cause)
	}
	return &temporary{err: fmt.Errorf("%w: %w", ErrStreamInterrupted, cause)}
}

// withRetries runs attempt until it succeeds, fails for good, retries run out
// or ctx ends. Each retry is announced through hooks.RetryFunc before its
// wait. Errors other than *APIError are prefixed with the provider name.
func withRetries(ctx context.Context, provider string, p retryPolicy, hooks Hooks, attempt func(context.Context, *output) (*Response, error)) (*Response, error) {
	for n := 1; ; n++ {
		out := &output{deltaFunc: hooks.DeltaFunc}
		resp, err := attempt(ctx, out)
		if err == nil {
			return resp, nil
		}
		var tmp *temporary
		retry := errors.As(err, &tmp)
		if retry {
			err = tmp.err
		}
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			err = fmt.Errorf("%s: %w", provider, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", provider, context.Cause(ctx))
		}
		if !retry || out.delivered || n > p.max {
			if n > 1 {
				err = fmt.Errorf("%w (after %d retries)", err, n-1)
			}
			return nil, err
		}
		d := p.delay(n, tmp.serverSaid, tmp.after)
		if hooks.RetryFunc != nil {
			hooks.RetryFunc(Retry{Attempt: n, MaxAttempts: p.max, DelayMs: d.Milliseconds(), Error: err.Error()})
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s: waiting to retry: %w", provider, context.Cause(ctx))
		case <-t.C:
		}
	}
}
