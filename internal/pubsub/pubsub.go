// Package pubsub is the receive loop of a Redis subscription that must
// outlive lost connections: the API's reply channel and the workers' cancel
// channel.
package pubsub

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Receive hands each message of ps to onMessage until ctx ends, then closes
// ps. Pub/sub is at-most-once: after go-redis re-subscribes on a new
// connection, and after a failed receive, messages may have been lost, and
// onGap is called so that the caller can catch up. name names the
// subscription in logs.
func Receive(ctx context.Context, ps *redis.PubSub, log *slog.Logger, name string, onMessage func(payload string), onGap func()) {
	// Receive does not return when ctx ends; closing the subscription does.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	defer ps.Close()
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		switch m := msg.(type) {
		case *redis.Message:
			onMessage(m.Payload)
		case *redis.Subscription:
			onGap()
		case *redis.Pong:
		default:
			if err != nil {
				log.Warn(name+": receive failed; reconnecting", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				onGap()
			}
		}
	}
}
