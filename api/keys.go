package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oneshot-dev/oneshot/run"
)

// APIKey is a key given in the settings (ONESHOT_API_KEYS) and its organization.
type APIKey struct {
	Org string
	Key string
}

// ParseAPIKeys reads org:key pairs, as ONESHOT_API_KEYS gives them.
func ParseAPIKeys(pairs []string) ([]APIKey, error) {
	var keys []APIKey
	for i, p := range pairs {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		org, key, ok := strings.Cut(p, ":")
		if !ok || !ValidOrg(org) {
			return nil, fmt.Errorf("entry %d is not org:key with an organization of letters, digits, '.', '_' or '-' (at most 64)", i+1)
		}
		if len(key) < 16 {
			return nil, fmt.Errorf("entry %d (organization %s): the key is shorter than 16 characters; use a long random key", i+1, org)
		}
		if slices.ContainsFunc(keys, func(k APIKey) bool { return k.Key == key }) {
			return nil, fmt.Errorf("entry %d (organization %s): the same key is listed twice; a key belongs to one organization", i+1, org)
		}
		keys = append(keys, APIKey{Org: org, Key: key})
	}
	return keys, nil
}

// ValidOrg reports whether s can name an organization: 1 to 64 letters,
// digits, '.', '_' or '-'.
func ValidOrg(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ErrKeyNotFound is returned by KeyStore.Revoke for a key it does not know.
var ErrKeyNotFound = errors.New("API key not found")

// KeyInfo describes a stored key without revealing it.
type KeyInfo struct {
	ID        string
	Org       string
	Prefix    string // the key's first characters, to recognise it by
	CreatedAt time.Time
	RevokedAt time.Time // zero while the key is valid
}

// KeyStore keeps the API keys made with `oneshot keys create` in Redis. Only
// a key's SHA-256 is stored, with its organization: the key itself is shown
// once, when it is made. A revoked key stays listed.
type KeyStore struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewKeyStore returns a store on rdb, under the "oneshot" key prefix.
func NewKeyStore(rdb redis.UniversalClient) *KeyStore {
	return &KeyStore{rdb: rdb, prefix: "oneshot"}
}

func (k *KeyStore) keyKey(hash string) string { return k.prefix + ":apikey:" + hash }
func (k *KeyStore) indexKey() string          { return k.prefix + ":apikeys" }

// keyHash is what names a key in Redis and in the rate limiter.
func keyHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Create makes a new key for an organization and returns it: the only time
// it can be read.
func (k *KeyStore) Create(ctx context.Context, org string) (string, KeyInfo, error) {
	if !ValidOrg(org) {
		return "", KeyInfo{}, fmt.Errorf("organization %q: use 1 to 64 letters, digits, '.', '_' or '-'", org)
	}
	var b [20]byte
	rand.Read(b[:])
	secret := "osk_" + keyEncoding.EncodeToString(b[:])
	info := KeyInfo{ID: run.NewID("key"), Org: org, Prefix: secret[:12], CreatedAt: time.Now().UTC()}
	hash := keyHash(secret)
	_, err := k.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.keyKey(hash), "id", info.ID, "org", info.Org, "prefix", info.Prefix, "createdAt", info.CreatedAt.Format(time.RFC3339Nano))
		p.ZAdd(ctx, k.indexKey(), redis.Z{Score: float64(info.CreatedAt.UnixMilli()), Member: hash})
		return nil
	})
	if err != nil {
		return "", KeyInfo{}, fmt.Errorf("store the key: %w", err)
	}
	return secret, info, nil
}

// List returns every stored key, revoked ones included, oldest first.
func (k *KeyStore) List(ctx context.Context) ([]KeyInfo, error) {
	infos, _, err := k.list(ctx)
	return infos, err
}

func (k *KeyStore) list(ctx context.Context) ([]KeyInfo, []string, error) {
	hashes, err := k.rdb.ZRange(ctx, k.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("list keys: %w", err)
	}
	cmds, err := k.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, h := range hashes {
			p.HGetAll(ctx, k.keyKey(h))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list keys: %w", err)
	}
	infos := make([]KeyInfo, 0, len(hashes))
	var kept []string
	for i, cmd := range cmds {
		h := cmd.(*redis.MapStringStringCmd).Val()
		if len(h) == 0 {
			continue
		}
		infos = append(infos, keyInfo(h))
		kept = append(kept, hashes[i])
	}
	return infos, kept, nil
}

func keyInfo(h map[string]string) KeyInfo {
	info := KeyInfo{ID: h["id"], Org: h["org"], Prefix: h["prefix"]}
	info.CreatedAt, _ = time.Parse(time.RFC3339Nano, h["createdAt"])
	info.RevokedAt, _ = time.Parse(time.RFC3339Nano, h["revokedAt"])
	return info
}

// Revoke revokes the key named by ref: its id, its prefix (or the start of
// it, 6 characters at least), or the key itself. Revoking a revoked key
// changes nothing. Servers refuse the key once their cache of it expires.
func (k *KeyStore) Revoke(ctx context.Context, ref string) (KeyInfo, error) {
	ref = strings.TrimSpace(ref)
	infos, hashes, err := k.list(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	var match []int
	for i, info := range infos {
		if ref == info.ID || ref == info.Prefix || hashes[i] == keyHash(ref) ||
			len(ref) >= 6 && strings.HasPrefix(info.Prefix, ref) {
			match = append(match, i)
		}
	}
	switch len(match) {
	case 0:
		return KeyInfo{}, fmt.Errorf("%w: no key has the id or prefix %q", ErrKeyNotFound, ref)
	case 1:
	default:
		var names []string
		for _, i := range match {
			names = append(names, infos[i].ID+" ("+infos[i].Prefix+")")
		}
		return KeyInfo{}, fmt.Errorf("%q names %d keys: %s; give an id", ref, len(match), strings.Join(names, ", "))
	}
	info := infos[match[0]]
	if info.RevokedAt.IsZero() {
		info.RevokedAt = time.Now().UTC()
		if err := k.rdb.HSet(ctx, k.keyKey(hashes[match[0]]), "revokedAt", info.RevokedAt.Format(time.RFC3339Nano)).Err(); err != nil {
			return KeyInfo{}, fmt.Errorf("revoke key %s: %w", info.ID, err)
		}
	}
	return info, nil
}

// lookup finds the valid key of a hash.
func (k *KeyStore) lookup(ctx context.Context, hash string) (KeyInfo, bool, error) {
	h, err := k.rdb.HGetAll(ctx, k.keyKey(hash)).Result()
	if err != nil {
		return KeyInfo{}, false, fmt.Errorf("look up key: %w", err)
	}
	if len(h) == 0 {
		return KeyInfo{}, false, nil
	}
	info := keyInfo(h)
	return info, info.RevokedAt.IsZero(), nil
}

// any reports whether a key was ever stored, revoked or not: revoking the
// last key must not open the server to everyone.
func (k *KeyStore) any(ctx context.Context) (bool, error) {
	n, err := k.rdb.Exists(ctx, k.indexKey()).Result()
	if err != nil {
		return false, fmt.Errorf("look up keys: %w", err)
	}
	return n > 0, nil
}
