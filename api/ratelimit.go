package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// limiter is a per-key request limit shared by every API replica: GCRA (the
// generic cell rate algorithm) on one Redis key per API key, one round trip
// per request. A key may send Limit requests at once, then one every
// minute/Limit: a smooth rate, without the double burst of a fixed window
// at its edge.
type limiter struct {
	rdb      redis.UniversalClient
	prefix   string
	limit    int
	interval time.Duration // minute / limit: the time one request "costs"
}

func newLimiter(rdb redis.UniversalClient, perMinute int) *limiter {
	if perMinute <= 0 {
		return nil
	}
	return &limiter{rdb: rdb, prefix: "oneshot:ratelimit:", limit: perMinute, interval: time.Minute / time.Duration(perMinute)}
}

// gcraScript stores the key's theoretical arrival time (TAT) in µs. KEYS[1]:
// the TAT. ARGV: now, interval, tolerance (limit x interval), all in µs.
// Returns {allowed, remaining, retry after µs, reset µs}.
var gcraScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
`)

type limitResult struct {
	allowed    bool
	remaining  int
	retryAfter time.Duration
	reset      time.Duration // until the full limit is available again
}

func (l *limiter) take(ctx context.Context, keyHash string) (limitResult, error) {
	now := time.Now().UnixMicro()
	interval := l.interval.Microseconds()
	v, err := gcraScript.Run(ctx, l.rdb, []string{l.prefix + keyHash[:32]}, now, interval, interval*int64(l.limit)).Int64Slice()
	if err != nil {
		return limitResult{}, fmt.Errorf("rate limit: %w", err)
	}
	if len(v) != 4 {
		return limitResult{}, fmt.Errorf("rate limit: unexpected reply %v", v)
	}
	return limitResult{allowed: v[0] == 1, remaining: int(v[1]), retryAfter: time.Duration(v[2]) * time.Microsecond, reset: time.Duration(v[3]) * time.Microsecond}, nil
}

// rateLimit counts a request of a key, sets the rate-limit headers, and
// answers 429 when the key is over its limit. If Redis fails, the request
// goes through: the limit protects the service, it must not take it down.
func (s *Server) rateLimit(c echo.Context, keyHash string) error {
	if s.limiter == nil {
		return nil
	}
	res, err := s.limiter.take(c.Request().Context(), keyHash)
	if err != nil {
		s.log.Warn("rate limit not applied", "err", err)
		return nil
	}
	h := c.Response().Header()
	h.Set("x-ratelimit-limit-requests", strconv.Itoa(s.limiter.limit))
	h.Set("x-ratelimit-remaining-requests", strconv.Itoa(res.remaining))
	h.Set("x-ratelimit-reset-requests", res.reset.Round(time.Millisecond).String())
	if res.allowed {
		return nil
	}
	wait := max(1, int(math.Ceil(res.retryAfter.Seconds())))
	h.Set("Retry-After", strconv.Itoa(wait))
	return &Error{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "rate_limited",
		Message: fmt.Sprintf("rate limit of %d requests per minute for this API key exceeded; retry after %d s", s.limiter.limit, wait)}
}
