package service

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// vaultBackend plays a vault backend with two vaults:
// v1 = {o1, o2}, v2 = {o3}; search answers one result per object.
func vaultBackend(t *testing.T) *fakeBackend {
	objects := map[string][]string{"v1": {"o1", "o2"}, "v2": {"o3"}}
	scores := map[string]float64{"o1": 0.2, "o2": 0.9, "o3": 0.5}
	return newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		switch {
		case len(parts) == 3 && parts[0] == "vaults" && parts[2] == "objects" && r.Method == "GET":
			ids, ok := objects[parts[1]]
			if !ok {
				http.Error(w, `{"error":"no such vault"}`, http.StatusNotFound)
				return
			}
			var items []string
			for _, id := range ids {
				items = append(items, fmt.Sprintf(`{"id":%q,"filename":"%s.pdf"}`, id, id))
			}
			fmt.Fprintf(w, `{"objects":[%s]}`, strings.Join(items, ","))
		case len(parts) == 3 && parts[0] == "vaults" && parts[2] == "search" && r.Method == "POST":
			var items []string
			for _, id := range objects[parts[1]] {
				items = append(items, fmt.Sprintf(`{"objectId":%q,"text":"passage of %s","score":%g}`, id, id, scores[id]))
			}
			items = append(items, `{"text":"a passage without an object id","score":1}`)
			fmt.Fprintf(w, `{"results":[%s]}`, strings.Join(items, ","))
		case len(parts) == 3 && parts[0] == "objects" && parts[2] == "text" && r.Method == "GET":
			if parts[1] == "json" {
				io.WriteString(w, `{"text":"text from a JSON answer"}`)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "the text of %s", parts[1])
		default:
			http.Error(w, "unexpected request", http.StatusTeapot)
		}
	})
}

func TestVaultList(t *testing.T) {
	backend := vaultBackend(t)
	r := New(Config{VaultURL: backend.URL + "/", VaultAPIKey: "vk"})
	ctx := context.Background()

	out, err := r.Run(ctx, call("vault.list", `{}`, []string{"v1", "v2", "v1"}, nil))
	require.NoError(t, err)
	require.JSONEq(t, `{"count":3,"objects":[
		{"id":"o1","filename":"o1.pdf","vaultId":"v1"},
		{"id":"o2","filename":"o2.pdf","vaultId":"v1"},
		{"id":"o3","filename":"o3.pdf","vaultId":"v2"}]}`, out)
	seen := backend.seen()
	require.Len(t, seen, 2, "each vault once")
	require.Equal(t, request{Method: "GET", Path: "/vaults/v1/objects", EscapedPath: "/vaults/v1/objects", Auth: "Bearer vk", RunID: "run_t"}, seen[0])

	// One vault, and the run's objects only.
	out, err = r.Run(ctx, call("vault.list", `{"vaultId":"v1"}`, []string{"v1", "v2"}, []string{"o2", "o3"}))
	require.NoError(t, err)
	require.JSONEq(t, `{"count":1,"objects":[{"id":"o2","filename":"o2.pdf","vaultId":"v1"}]}`, out)
}

func TestVaultSearch(t *testing.T) {
	backend := vaultBackend(t)
	r := New(Config{VaultURL: backend.URL})
	ctx := context.Background()

	out, err := r.Run(ctx, call("vault.search", `{"query":"indemnity","limit":3}`, []string{"v1", "v2"}, nil))
	require.NoError(t, err)
	m := decode(t, out)
	require.EqualValues(t, 3, m["count"])
	results := m["results"].([]any)
	require.Equal(t, "a passage without an object id", results[0].(map[string]any)["text"], "best score first across vaults")
	require.Equal(t, "v1", results[0].(map[string]any)["vaultId"])
	require.Equal(t, "v2", results[1].(map[string]any)["vaultId"])
	require.Equal(t, "o2", results[2].(map[string]any)["objectId"])

	seen := backend.seen()
	require.Len(t, seen, 2)
	require.Equal(t, "/vaults/v1/search", seen[0].Path)
	require.Equal(t, "/vaults/v2/search", seen[1].Path)
	require.Equal(t, `{"query":"indemnity","limit":3}`, seen[0].Body)
	require.Equal(t, "application/json", seen[0].ContentType)

	// With objectIds: the backend is told, and the answer filtered (the
	// result without an object id cannot be checked, so it is dropped).
	out, err = r.Run(ctx, call("vault.search", `{"query":"term"}`, []string{"v1", "v2"}, []string{"o1", "o3"}))
	require.NoError(t, err)
	require.JSONEq(t, `{"count":2,"results":[
		{"objectId":"o3","text":"passage of o3","score":0.5,"vaultId":"v2"},
		{"objectId":"o1","text":"passage of o1","score":0.2,"vaultId":"v1"}]}`, out)
	seen = backend.seen()
	require.JSONEq(t, `{"query":"term","limit":10,"objectIds":["o1","o3"]}`, seen[2].Body)
}

func TestVaultRead(t *testing.T) {
	backend := vaultBackend(t)
	r := New(Config{VaultURL: backend.URL})
	ctx := context.Background()

	t.Run("one of the run's objects", func(t *testing.T) {
		before := len(backend.seen())
		out, err := r.Run(ctx, call("vault.read", `{"objectId":"o2"}`, []string{"v1"}, []string{"o2"}))
		require.NoError(t, err)
		require.Equal(t, "the text of o2", out)
		seen := backend.seen()[before:]
		require.Len(t, seen, 1, "objectIds are checked without a backend call")
		require.Equal(t, "/objects/o2/text", seen[0].Path)
	})
	t.Run("an object of the run's vaults", func(t *testing.T) {
		before := len(backend.seen())
		out, err := r.Run(ctx, call("vault.read", `{"objectId":"o3"}`, []string{"v1", "v2"}, nil))
		require.NoError(t, err)
		require.Equal(t, "the text of o3", out)
		var paths []string
		for _, s := range backend.seen()[before:] {
			paths = append(paths, s.Path)
		}
		require.Equal(t, []string{"/vaults/v1/objects", "/vaults/v2/objects", "/objects/o3/text"}, paths)
	})
	t.Run("a JSON answer", func(t *testing.T) {
		out, err := r.Run(ctx, call("vault.read", `{"objectId":"json"}`, []string{"v1"}, []string{"json"}))
		require.NoError(t, err)
		require.Equal(t, "text from a JSON answer", out)
	})
	t.Run("a window of a long text", func(t *testing.T) {
		long := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
			io.WriteString(w, strings.Repeat("abcdefghij", 10))
		})
		r := New(Config{VaultURL: long.URL, MaxOutputBytes: 256 + 30})
		out, err := r.Run(ctx, call("vault.read", `{"objectId":"o1"}`, []string{"v1"}, []string{"o1"}))
		require.NoError(t, err)
		require.Equal(t, "abcdefghijabcdefghijabcdefghij\n[showing bytes 0-30 of 100; read on with offset 30]", out)
		out, err = r.Run(ctx, call("vault.read", `{"objectId":"o1","offset":90}`, []string{"v1"}, []string{"o1"}))
		require.NoError(t, err)
		require.Equal(t, "abcdefghij", out)
	})
}

func TestVaultScope(t *testing.T) {
	backend := vaultBackend(t)
	r := New(Config{VaultURL: backend.URL})
	ctx := context.Background()

	for _, tc := range []struct {
		name, tool, input string
		vaults, objects   []string
		want              string
	}{
		{"read of an object outside objectIds", "vault.read", `{"objectId":"o1"}`, []string{"v1"}, []string{"o2"},
			`object "o1" is not one of this run's objects`},
		{"read of an id that climbs the path", "vault.read", `{"objectId":"../vaults/v1/objects"}`, []string{"v1"}, []string{"o1"},
			`object "../vaults/v1/objects" is not one of this run's objects`},
		{"list of a vault not attached", "vault.list", `{"vaultId":"v2"}`, []string{"v1"}, nil,
			`vault "v2" is not attached to this run; its vaults are: v1`},
		{"search of a vault not attached", "vault.search", `{"query":"q","vaultId":"v9"}`, []string{"v1", "v2"}, nil,
			`vault "v9" is not attached to this run; its vaults are: v1, v2`},
		{"list without vaults", "vault.list", `{}`, nil, nil, "no vault is attached to this run: vault.list has nothing to work on"},
		{"search without vaults", "vault.search", `{"query":"q"}`, nil, []string{"o1"}, "no vault is attached to this run: vault.search has nothing to work on"},
		{"read without vaults", "vault.read", `{"objectId":"o1"}`, nil, []string{"o1"}, "no vault is attached to this run: vault.read has nothing to work on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(backend.seen())
			_, err := r.Run(ctx, call(tc.tool, tc.input, tc.vaults, tc.objects))
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrOutOfScope)
			require.Len(t, backend.seen(), before, "the backend saw no request")
		})
	}

	t.Run("read of an object in none of the run's vaults", func(t *testing.T) {
		before := len(backend.seen())
		_, err := r.Run(ctx, call("vault.read", `{"objectId":"o3"}`, []string{"v1"}, nil))
		require.EqualError(t, err, `object "o3" is not in the vaults attached to this run`)
		require.ErrorIs(t, err, ErrOutOfScope)
		for _, s := range backend.seen()[before:] {
			require.NotContains(t, s.Path, "/text", "the text was never asked for")
		}
	})
	t.Run("ids are escaped in paths", func(t *testing.T) {
		before := len(backend.seen())
		_, err := r.Run(ctx, call("vault.read", `{"objectId":"../x?y"}`, []string{"v1"}, []string{"../x?y"}))
		require.Error(t, err) // the fake answers 418 to what it does not know
		seen := backend.seen()[before:]
		require.Len(t, seen, 1)
		require.Equal(t, "/objects/..%2Fx%3Fy/text", seen[0].EscapedPath)
	})
	t.Run("not configured", func(t *testing.T) {
		_, err := New(Config{}).Run(ctx, call("vault.search", `{"query":"q"}`, []string{"v1"}, nil))
		require.EqualError(t, err, "vault.search is not configured on this server: set ONESHOT_VAULT_URL")
		require.ErrorIs(t, err, ErrNotConfigured)
	})
	t.Run("backend error", func(t *testing.T) {
		_, err := r.Run(ctx, call("vault.list", `{}`, []string{"v404"}, nil))
		require.EqualError(t, err, `vault backend: GET /vaults/v404/objects answered 404 Not Found: {"error":"no such vault"}`)
	})
	t.Run("an answer that cannot be read", func(t *testing.T) {
		odd := newFakeBackend(t, func(w http.ResponseWriter, r *http.Request, body string) {
			io.WriteString(w, `{"documents":[]}`)
		})
		_, err := New(Config{VaultURL: odd.URL}).Run(ctx, call("vault.list", `{}`, []string{"v1"}, nil))
		require.EqualError(t, err, "vault backend: the answer has no objects or items or data list")
	})
}
