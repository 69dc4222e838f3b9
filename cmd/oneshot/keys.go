package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/oneshot-dev/oneshot/api"
	"github.com/oneshot-dev/oneshot/internal/system"
)

const keysUsage = `usage: oneshot keys <command>   (needs ONESHOT_REDIS_URL)

commands:
  create --org NAME      make an API key for an organization; it is printed once
  list                   list the keys: id, organization, prefix, created, revoked
  revoke <id-or-prefix>  revoke a key; API servers refuse it within ONESHOT_AUTH_CACHE_TTL

Once any key exists, every API request needs Authorization: Bearer <key>.`

// keys runs `oneshot keys ...` against the Redis of ONESHOT_REDIS_URL.
func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, keysUsage)
		if len(args) == 0 {
			return errors.New("no keys command given")
		}
		return nil
	}
	url := os.Getenv("ONESHOT_REDIS_URL")
	if url == "" {
		return errors.New("ONESHOT_REDIS_URL is required: keys live in the Redis the API servers use (e.g. redis://127.0.0.1:6379/0)")
	}
	rdb, err := system.NewRedis(url)
	if err != nil {
		return fmt.Errorf("ONESHOT_REDIS_URL: %w", err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store := api.NewKeyStore(rdb)

	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
		fs.SetOutput(stderr)
		org := fs.String("org", "", "the organization the key belongs to (required)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *org == "" {
			return errors.New("keys create: --org NAME is required")
		}
		secret, info, err := store.Create(ctx, *org)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "Created key %s (%s) for organization %s. It is shown only this once: store it now.\n", info.ID, info.Prefix, info.Org)
		return nil
	case "list":
		infos, err := store.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tORG\tPREFIX\tCREATED\tREVOKED")
		for _, k := range infos {
			revoked := "-"
			if !k.RevokedAt.IsZero() {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Org, k.Prefix, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			return errors.New("keys revoke: give one key id or prefix (see oneshot keys list)")
		}
		info, err := store.Revoke(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s (%s) of organization %s at %s\n", info.ID, info.Prefix, info.Org, info.RevokedAt.Format(time.RFC3339))
		return nil
	default:
		fmt.Fprintln(stderr, keysUsage)
		return fmt.Errorf("unknown keys command %q", args[0])
	}
}
