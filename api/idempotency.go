package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/run"
)

// IdempotencyHeader names the header that makes a run-creating request safe
// to retry.
const IdempotencyHeader = "Idempotency-Key"

const (
	// idempotencyPending bounds how long a claim on a key lasts while its run
	// is made (enqueue gives up after 10 s).
	idempotencyPending = 30 * time.Second
	// idempotencyWait is how long a concurrent request with the same key
	// waits for the first one to name its run.
	idempotencyWait = 15 * time.Second
)

// idempotent makes the run that create makes at most once per Idempotency-Key
// of the caller's organization. Without the header it just calls create. The
// first request with a key claims it (SET NX with a placeholder), calls
// create, and stores the run id for ONESHOT_RUN_RETENTION; the same key with
// the same method, route and JSON body (key order and spacing aside) then
// returns that run id with replay true, and concurrent requests wait for it.
// The same key with another body is a 422, idempotency_key_reused. If create
// fails, the claim is released, so a retry can make the run.
//
// Call it after validating the body: a rejected request claims nothing.
func (s *Server) idempotent(c echo.Context, body []byte, create func() (runID string, err error)) (runID string, replay bool, err error) {
	idemKey := c.Request().Header.Get(IdempotencyHeader)
	if idemKey == "" {
		runID, err = create()
		return runID, false, err
	}
	if len(idemKey) > 255 || strings.ContainsFunc(idemKey, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", false, invalid(IdempotencyHeader, "invalid_idempotency_key", "header %s must be 1 to 255 printable characters, such as a UUID", IdempotencyHeader)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), idempotencyWait+5*time.Second)
	defer cancel()
	key := s.idempotencyKey(orgOf(c), idemKey)
	fp := fingerprint(c.Request().Method+" "+c.Path(), body)
	claim := "pending " + fp + " " + run.NewID("claim")
	deadline := time.Now().Add(idempotencyWait)
	for {
		won, err := s.cfg.Redis.SetNX(ctx, key, claim, idempotencyPending).Result()
		if err != nil {
			return "", false, unavailable(err)
		}
		if won {
			runID, err := create()
			if err != nil {
				if rerr := compareAndSet.Run(ctx, s.cfg.Redis, []string{key}, claim, "", 0).Err(); rerr != nil {
					s.log.Warn("release idempotency key", "err", rerr)
				}
				return "", false, err
			}
			if err := compareAndSet.Run(ctx, s.cfg.Redis, []string{key}, claim, "run "+fp+" "+runID, s.cfg.RunRetention.Milliseconds()).Err(); err != nil {
				// The run exists; a retry after the claim expires would make another.
				s.log.Error("store idempotency key", "run", runID, "err", err)
			}
			return runID, false, nil
		}
		v, err := s.cfg.Redis.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			continue // released or expired meanwhile: claim it again
		}
		if err != nil {
			return "", false, unavailable(err)
		}
		state, rest, _ := strings.Cut(v, " ")
		vfp, ref, _ := strings.Cut(rest, " ")
		if vfp != fp {
			return "", false, &Error{Status: http.StatusUnprocessableEntity, Type: typeInvalidRequest, Code: "idempotency_key_reused", Param: IdempotencyHeader,
				Message: fmt.Sprintf("this %s was used with a different request; use a new key for a new request", IdempotencyHeader)}
		}
		if state == "run" {
			return ref, true, nil
		}
		if time.Now().After(deadline) {
			return "", false, &Error{Status: http.StatusConflict, Type: typeConflict, Code: "idempotency_key_in_use",
				Message: fmt.Sprintf("a request with this %s is still being processed; retry shortly", IdempotencyHeader)}
		}
		select {
		case <-ctx.Done():
			return "", false, unavailable(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// compareAndSet replaces (or, with an empty value, deletes) the key if it
// still holds the expected value. KEYS[1]; ARGV: expected, value, ttl ms.
var compareAndSet = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

func (s *Server) idempotencyKey(org, key string) string {
	sum := sha256.Sum256([]byte(key))
	return "oneshot:{org:" + org + "}:idem:" + hex.EncodeToString(sum[:])
}

// fingerprint identifies a request: its route and its body, as JSON with
// sorted keys when it is JSON, so that re-encoding by a client does not count
// as a different request.
func fingerprint(route string, body []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) == nil {
		if canon, err := json.Marshal(v); err == nil {
			body = canon
		}
	}
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// replayExecute answers a retried execute like the first request: a sync one
// joins the wait for the run (or has its result at once), a legacy one gets
// where to poll. It returns the wait to join, if any; the caller waits.
func (s *Server) replayExecute(c echo.Context, runID string) (*syncWait, error) {
	c.Response().Header().Set("Idempotent-Replayed", "true")
	// Registered before the read: an end between the two still wakes it.
	wake, done := s.waiters.Add(runID)
	rec, err := s.cfg.Store.Get(c.Request().Context(), runID)
	if err == nil && rec.Mode != run.ModeLegacy && !rec.Status.Terminal() {
		return newSyncWait(rec, wake, done), nil
	}
	done()
	switch {
	case errors.Is(err, run.ErrNotFound):
		return nil, notFound("run", runID)
	case err != nil:
		return nil, unavailable(err)
	case rec.Mode == run.ModeLegacy:
		return nil, c.JSON(http.StatusAccepted, s.pending(rec, "Run started."))
	default: // ended
		return nil, c.JSON(http.StatusOK, s.final(rec))
	}
}
