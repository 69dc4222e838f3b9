package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// orgKey is the echo.Context key under which authentication stores the
// caller's organization.
const orgKey = "oneshot.org"

// orgOf returns the organization of the request's caller; "" when the server
// runs without API keys (open mode).
func orgOf(c echo.Context) string {
	org, _ := c.Get(orgKey).(string)
	return org
}

// authenticate resolves the caller's API key to its organization, then
// applies the key's rate limit. Open mode: no keys configured (none in
// ONESHOT_API_KEYS, none ever made in Redis), every request is of
// organization "" and nothing is limited. Health and metrics are always open.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().URL.Path {
		case "/healthz", "/readyz", "/metrics":
			return next(c)
		}
		// An open server has nothing to check; whether it is open is known
		// without Redis but once per ttl.
		if open, known := s.auth.openKnown(); known && open {
			return next(c)
		}
		// The checks may call Redis, and a sync execute then waits on this
		// goroutine: they are offloaded, to keep its stack small.
		if err := s.offload(c.Request().Context(), func() error { return s.checkKey(c) }); err != nil {
			return err
		}
		return next(c)
	}
}

// checkKey resolves the caller's key to its organization, kept in c, and
// applies the key's rate limit. In open mode it lets everything through.
func (s *Server) checkKey(c echo.Context) error {
	ctx := c.Request().Context()
	open, err := s.auth.open(ctx)
	if err != nil {
		return unavailable(err)
	}
	if open {
		return nil
	}
	secret, ok := credentials(c.Request())
	if !ok {
		return s.unauthorized(c, "missing_api_key", "this server needs an API key: send it as the header Authorization: Bearer <key>")
	}
	p, ok, err := s.auth.resolve(ctx, secret)
	if err != nil {
		return unavailable(err)
	}
	if !ok {
		return s.unauthorized(c, "invalid_api_key", "the API key is not valid (unknown or revoked): send a valid key as the header Authorization: Bearer <key>")
	}
	c.Set(orgKey, p.org)
	return s.rateLimit(c, p.keyHash)
}

func (s *Server) unauthorized(c echo.Context, code, msg string) error {
	challenge := `Bearer realm="oneshot"`
	if strings.HasPrefix(c.Request().URL.Path, "/monitoring") {
		// A browser asks for Basic credentials: the key as the password.
		challenge = `Basic realm="oneshot: the API key as password"`
	}
	c.Response().Header().Set("WWW-Authenticate", challenge)
	return &Error{Status: http.StatusUnauthorized, Type: typeAuthentication, Code: code, Message: msg}
}

// credentials reads the key of a request: Authorization: Bearer <key>, or
// Basic with the key as password (or user), for browsers on /monitoring.
func credentials(r *http.Request) (string, bool) {
	scheme, value, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok {
		return "", false
	}
	value = strings.TrimSpace(value)
	switch strings.ToLower(scheme) {
	case "bearer":
		return value, value != ""
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return "", false
		}
		user, pass, _ := strings.Cut(string(raw), ":")
		if pass == "" {
			pass = user
		}
		return pass, pass != ""
	}
	return "", false
}

// principal is who a key speaks for.
type principal struct {
	org     string
	keyHash string
}

// authenticator resolves keys on the hot path without a Redis round trip per
// request: keys from the settings are in memory, and lookups of stored keys
// (found or not) are cached for ttl, which is therefore how long a revoked
// key may still work.
type authenticator struct {
	env   map[string]string // key hash -> org
	store *KeyStore
	ttl   time.Duration

	mu        sync.Mutex
	cache     map[string]cachedKey
	closed    bool // a stored key exists: for good, revoking does not reopen
	checkedAt time.Time
}

type cachedKey struct {
	org     string
	ok      bool
	expires time.Time
}

// maxCachedKeys bounds the cache against callers that try random keys.
const maxCachedKeys = 10_000

func newAuthenticator(keys []APIKey, store *KeyStore, ttl time.Duration) *authenticator {
	a := &authenticator{env: map[string]string{}, store: store, ttl: ttl, cache: map[string]cachedKey{}}
	for _, k := range keys {
		a.env[keyHash(k.Key)] = k.Org
	}
	return a
}

// open reports whether the server runs without keys. A key made in Redis
// closes an open server within ttl.
func (a *authenticator) open(ctx context.Context) (bool, error) {
	if open, known := a.openKnown(); known {
		return open, nil
	}
	any, err := a.store.any(ctx)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	a.closed = a.closed || any
	a.checkedAt = time.Now()
	closed := a.closed
	a.mu.Unlock()
	return !closed, nil
}

// openKnown is open when the answer is known without Redis (known): keys in
// the settings, a stored key seen, or a check of Redis less than ttl ago.
func (a *authenticator) openKnown() (open, known bool) {
	if len(a.env) > 0 {
		return false, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || time.Since(a.checkedAt) < a.ttl {
		return !a.closed, true
	}
	return false, false
}

func (a *authenticator) resolve(ctx context.Context, secret string) (principal, bool, error) {
	hash := keyHash(secret)
	if org, ok := a.env[hash]; ok {
		return principal{org: org, keyHash: hash}, true, nil
	}
	now := time.Now()
	a.mu.Lock()
	e, ok := a.cache[hash]
	a.mu.Unlock()
	if !ok || now.After(e.expires) {
		info, found, err := a.store.lookup(ctx, hash)
		if err != nil {
			return principal{}, false, err
		}
		e = cachedKey{org: info.Org, ok: found, expires: now.Add(a.ttl)}
		a.mu.Lock()
		if len(a.cache) >= maxCachedKeys {
			clear(a.cache)
		}
		a.cache[hash] = e
		a.mu.Unlock()
	}
	return principal{org: e.org, keyHash: hash}, e.ok, nil
}

// KeyCount returns the number of valid keys: those in the settings and those
// in Redis, not revoked.
func (s *Server) KeyCount(ctx context.Context) (int, error) {
	infos, err := s.auth.store.List(ctx)
	if err != nil {
		return 0, err
	}
	n := len(s.auth.env)
	for _, info := range infos {
		if info.RevokedAt.IsZero() {
			n++
		}
	}
	return n, nil
}

// Open reports whether the server answers requests without a key.
func (s *Server) Open(ctx context.Context) (bool, error) { return s.auth.open(ctx) }
