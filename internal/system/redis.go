package system

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewRedis connects to the Redis a URL names. Two forms:
//
//	redis://[user:password@]host:port[/db]          one server (rediss:// for TLS)
//	redis-sentinel://[:password@]host:port,host:port[/db]?master=NAME[&sentinel_password=P]
//	                                                 a primary found through Sentinel; the
//	                                                 client follows failovers
//
// The sentinel form is the one Asynq's own tools (asynqmon) read too.
func NewRedis(rawURL string) (redis.UniversalClient, error) {
	if !strings.HasPrefix(rawURL, "redis-sentinel://") {
		opt, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opt), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	opt := &redis.FailoverOptions{
		MasterName:       q.Get("master"),
		SentinelAddrs:    strings.Split(u.Host, ","),
		SentinelPassword: q.Get("sentinel_password"),
	}
	if opt.MasterName == "" {
		return nil, fmt.Errorf("%s: the sentinel form needs ?master=NAME", redactURL(rawURL))
	}
	if p, ok := u.User.Password(); ok {
		opt.Password = p
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if opt.DB, err = strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("%s: database %q is not a number", redactURL(rawURL), db)
		}
	}
	return redis.NewFailoverClient(opt), nil
}

// redactURL hides a password in a Redis URL.
func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "***" + u[at:]
		}
	}
	return u
}

// RedactedRedisURL is the Redis URL without its password, for logs.
func (s *System) RedactedRedisURL() string { return redactURL(s.cfg.RedisURL) }
