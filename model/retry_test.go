package model

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// protocol is what the failure tests need to know of a provider.
type protocol struct {
	name       string
	model      string
	new        func(url string, maxRetries int, base time.Duration) Provider
	stream     string // a good streamed answer
	streamText string // its text
	firstDelta string // a line of stream after which one delta has been delivered
	// Error answers, as the provider documents them.
	rateLimited, overloaded, badRequest string
	overloadStatus                      int
	badRequestType, badRequestCode      string
	badRequestMessage                   string
	streamError                         string // an overload error inside a stream
}

func protocols(t *testing.T) []protocol {
	openai := protocol{
		model: "openai/gpt-4o-mini",
		new: func(url string, maxRetries int, base time.Duration) Provider {
			return NewOpenAI(OpenAIConfig{APIKey: "k", BaseURL: url, MaxRetries: maxRetries, RetryBaseDelay: base, RetryMaxDelay: 5 * base})
		},
		stream:            fixture(t, "openai/chat.sse"),
		streamText:        "Hello! How can I assist you today?",
		firstDelta:        `"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}` + "\n\n",
		rateLimited:       `{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-123 on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
		overloaded:        `{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}`,
		overloadStatus:    http.StatusServiceUnavailable,
		badRequest:        `{"error":{"message":"Invalid 'messages[1].content': string too long.","type":"invalid_request_error","param":"messages[1].content","code":"string_above_max_length"}}`,
		badRequestType:    "invalid_request_error",
		badRequestCode:    "string_above_max_length",
		badRequestMessage: "Invalid 'messages[1].content': string too long.",
		streamError:       `data: {"error":{"message":"Provider returned error","code":502}}` + "\n\n",
	}
	openai.name = "openai"
	gateway := openai
	gateway.name, gateway.model = "gateway", "anthropic/claude-sonnet-4.6"
	gateway.new = func(url string, maxRetries int, base time.Duration) Provider {
		return NewGateway(OpenAIConfig{BaseURL: url, MaxRetries: maxRetries, RetryBaseDelay: base, RetryMaxDelay: 5 * base})
	}
	return []protocol{
		{
			name:  "anthropic",
			model: DefaultModel,
			new: func(url string, maxRetries int, base time.Duration) Provider {
				return NewAnthropic(AnthropicConfig{APIKey: "k", BaseURL: url, MaxRetries: maxRetries, RetryBaseDelay: base, RetryMaxDelay: 5 * base})
			},
			stream:            fixture(t, "anthropic/hello.sse"),
			streamText:        "Hello!",
			firstDelta:        `"text": "Hello"}}` + "\n\n",
			rateLimited:       `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
			overloaded:        `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			overloadStatus:    529,
			badRequest:        `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`,
			badRequestType:    "invalid_request_error",
			badRequestMessage: "max_tokens: Field required",
			streamError:       "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
		},
		openai,
		gateway,
	}
}

func TestRetriedThenSucceeds(t *testing.T) {
	for _, pr := range protocols(t) {
		tests := []struct {
			name      string
			first     http.HandlerFunc
			base      time.Duration // backoff; an hour where the server's delay must win
			wantDelay int64         // -1: any
			wantError string
		}{
			{name: "429 with Retry-After seconds", first: reply(429, pr.rateLimited, "Retry-After", "0"), base: time.Hour, wantDelay: 0, wantError: "429"},
			{name: "429 with retry-after-ms", first: reply(429, pr.rateLimited, "retry-after-ms", "3", "Retry-After", "3600"), base: time.Hour, wantDelay: 3, wantError: "rate limit"},
			{name: "overloaded", first: reply(pr.overloadStatus, pr.overloaded), base: time.Millisecond, wantDelay: -1, wantError: "overloaded"},
			{name: "502 from a proxy", first: reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "Content-Type", "text/html"), base: time.Millisecond, wantDelay: -1, wantError: "502 Bad Gateway"},
			{name: "connection dropped before the answer", first: replyDrop(""), base: time.Millisecond, wantDelay: -1, wantError: "send request"},
			{name: "stream dropped before any delta", first: replyDrop(strings.SplitAfter(pr.stream, "\n\n")[0]), base: time.Millisecond, wantDelay: -1, wantError: "stream interrupted"},
			{name: "overload event in the stream", first: replyStream(pr.streamError), base: time.Millisecond, wantDelay: -1, wantError: pr.name},
		}
		for _, tt := range tests {
			t.Run(pr.name+"/"+tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				srv := newFakeServer(t, tt.first, replyStream(pr.stream))
				var rec recorder
				resp, err := pr.new(srv.URL, 0, tt.base).Complete(ctx, Request{Model: pr.model}, rec.hooks())
				require.NoError(t, err)
				require.Equal(t, pr.streamText, partsText(resp.Content, PartText))
				require.Equal(t, pr.streamText, rec.text())
				require.Len(t, srv.requests(), 2)
				require.Len(t, rec.retries, 1)
				r := rec.retries[0]
				require.Equal(t, 1, r.Attempt)
				require.Equal(t, DefaultMaxRetries, r.MaxAttempts)
				if tt.wantDelay >= 0 {
					require.Equal(t, tt.wantDelay, r.DelayMs, "the server's delay is honoured")
				}
				require.LessOrEqual(t, r.DelayMs, int64(3600_000))
				require.Contains(t, strings.ToLower(r.Error), strings.ToLower(tt.wantError))
			})
		}
	}
}

func TestFailsAtOnce(t *testing.T) {
	for _, pr := range protocols(t) {
		t.Run(pr.name+"/400", func(t *testing.T) {
			srv := newFakeServer(t, reply(400, pr.badRequest, "request-id", "req_011CSHoEeqs5C35K2UUqR7Fy", "x-request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"))
			var rec recorder
			_, err := pr.new(srv.URL, 0, time.Millisecond).Complete(context.Background(), Request{Model: pr.model}, rec.hooks())
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, &APIError{Provider: pr.name, Status: 400, Type: pr.badRequestType, Code: pr.badRequestCode, Message: pr.badRequestMessage, RequestID: "req_011CSHoEeqs5C35K2UUqR7Fy"}, apiErr)
			require.Contains(t, err.Error(), pr.badRequestMessage)
			require.Len(t, srv.requests(), 1, "a 400 is not retried")
			require.Empty(t, rec.retries)
		})
		t.Run(pr.name+"/malformed body", func(t *testing.T) {
			srv := newFakeServer(t, reply(200, `{"content": [`))
			_, err := pr.new(srv.URL, 0, time.Millisecond).Complete(context.Background(), Request{Model: pr.model}, Hooks{})
			require.ErrorIs(t, err, ErrMalformedResponse)
			require.Contains(t, err.Error(), pr.name+": malformed response")
			require.Len(t, srv.requests(), 1)
		})
		t.Run(pr.name+"/malformed stream", func(t *testing.T) {
			srv := newFakeServer(t, replyStream("data: {not json\n\n"))
			_, err := pr.new(srv.URL, 0, time.Millisecond).Complete(context.Background(), Request{Model: pr.model}, Hooks{})
			require.ErrorIs(t, err, ErrMalformedResponse)
			require.Len(t, srv.requests(), 1)
		})
		t.Run(pr.name+"/dropped after output", func(t *testing.T) {
			srv := newFakeServer(t, replyDrop(upTo(t, pr.stream, pr.firstDelta)), replyStream(pr.stream))
			var rec recorder
			_, err := pr.new(srv.URL, 0, time.Millisecond).Complete(context.Background(), Request{Model: pr.model}, rec.hooks())
			require.ErrorIs(t, err, ErrStreamInterrupted)
			require.Contains(t, err.Error(), "after output was delivered")
			require.Equal(t, "Hello", rec.text(), "what arrived was passed on")
			require.Len(t, srv.requests(), 1, "a stream that delivered output is not retried")
			require.Empty(t, rec.retries)
		})
		t.Run(pr.name+"/gives up", func(t *testing.T) {
			srv := newFakeServer(t, reply(pr.overloadStatus, pr.overloaded))
			var rec recorder
			_, err := pr.new(srv.URL, 2, time.Millisecond).Complete(context.Background(), Request{Model: pr.model}, rec.hooks())
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, pr.overloadStatus, apiErr.Status)
			require.Contains(t, err.Error(), "after 2 retries")
			require.Len(t, srv.requests(), 3)
			require.Equal(t, []int{1, 2}, []int{rec.retries[0].Attempt, rec.retries[1].Attempt})
		})
		t.Run(pr.name+"/no retries", func(t *testing.T) {
			srv := newFakeServer(t, reply(pr.overloadStatus, pr.overloaded))
			_, err := pr.new(srv.URL, -1, time.Millisecond).Complete(context.Background(), Request{Model: pr.model}, Hooks{})
			require.Error(t, err)
			require.Len(t, srv.requests(), 1)
		})
		t.Run(pr.name+"/canceled while waiting", func(t *testing.T) {
			srv := newFakeServer(t, reply(pr.overloadStatus, pr.overloaded))
			ctx, cancel := context.WithCancel(context.Background())
			hooks := Hooks{RetryFunc: func(Retry) { cancel() }}
			done := make(chan error, 1)
			go func() {
				_, err := pr.new(srv.URL, 0, time.Hour).Complete(ctx, Request{Model: pr.model}, hooks)
				done <- err
			}()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(10 * time.Second):
				t.Fatal("the retry wait ignored the canceled context")
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		header   http.Header
		want     time.Duration
		wantSaid bool
	}{
		{name: "none", header: http.Header{}},
		{name: "seconds", header: http.Header{"Retry-After": {"2"}}, want: 2 * time.Second, wantSaid: true},
		{name: "fraction", header: http.Header{"Retry-After": {"0.5"}}, want: 500 * time.Millisecond, wantSaid: true},
		{name: "http date", header: http.Header{"Retry-After": {now.Add(7 * time.Second).Format(http.TimeFormat)}}, want: 7 * time.Second, wantSaid: true},
		{name: "date passed", header: http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, want: 0, wantSaid: true},
		{name: "ms wins", header: http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"9"}}, want: 250 * time.Millisecond, wantSaid: true},
		{name: "garbage", header: http.Header{"Retry-After": {"soon"}}},
		{name: "negative", header: http.Header{"Retry-After": {"-3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, said := retryAfter(tt.header, now)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantSaid, said)
		})
	}
}

func TestRetryDelay(t *testing.T) {
	p := newRetryPolicy(0, 100*time.Millisecond, time.Second)
	require.Equal(t, DefaultMaxRetries, p.max)
	for n := 1; n <= 70; n++ {
		want := min(100*time.Millisecond<<min(n-1, 20), time.Second)
		d := p.delay(n, false, 0)
		require.LessOrEqual(t, d, want, "retry %d", n)
		require.GreaterOrEqual(t, d, want*3/4, "retry %d: at most a quarter of jitter", n)
	}
	require.Equal(t, time.Second, p.delay(1, true, time.Hour), "the server's delay is capped too")
	require.Equal(t, 0, newRetryPolicy(-1, 0, 0).max)
}

func TestAPIErrorParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want APIError
	}{
		{name: "anthropic", body: `{"type":"error","error":{"type":"not_found_error","message":"The requested resource could not be found."}}`,
			want: APIError{Type: "not_found_error", Message: "The requested resource could not be found."}},
		{name: "openai", body: `{"error":{"message":"Incorrect API key provided: sk-abc.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			want: APIError{Type: "invalid_request_error", Code: "invalid_api_key", Message: "Incorrect API key provided: sk-abc."}},
		{name: "openrouter numeric code", body: `{"error":{"message":"No endpoints found","code":404}}`,
			want: APIError{Code: "404", Message: "No endpoints found"}},
		{name: "vllm flat", body: `{"object":"error","message":"The model does not exist.","type":"NotFoundError","param":null,"code":404}`,
			want: APIError{Type: "NotFoundError", Code: "404", Message: "The model does not exist."}},
		{name: "ollama string", body: `{"error":"model \"llama9\" not found, try pulling it first"}`,
			want: APIError{Message: `model "llama9" not found, try pulling it first`}},
		{name: "text", body: "upstream connect error\n", want: APIError{Message: "upstream connect error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseAPIError("p", 404, []byte(tt.body), "")
			tt.want.Provider, tt.want.Status = "p", 404
			require.Equal(t, &tt.want, got)
		})
	}
}
