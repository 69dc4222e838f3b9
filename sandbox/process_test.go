package sandbox

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProcessDriver(t *testing.T) {
	t.Parallel()
	d, err := NewDriver(ProcessDriverName, Config{
		Command: []string{"/bin/sh", "-c", `read line; echo "got $line"; pwd; env; exit 4`},
		Env:     []string{"EXTRA=1"},
	})
	require.NoError(t, err)
	require.Equal(t, "unsafe-process", d.Name())
	sb := start(t, d, Spec{})
	_, err = sb.Stdin().Write([]byte("hi\n"))
	require.NoError(t, err)
	out, _, exit := finish(t, sb)
	require.True(t, strings.HasPrefix(out, "got hi\n"), out)
	require.NotContains(t, out, secretValue)
	require.Contains(t, out, "EXTRA=1\n")
	require.Equal(t, 4, exit.Code)
	workspace := strings.Split(out, "\n")[1]
	require.DirExists(t, workspace)
	require.NoError(t, sb.Destroy())
	require.NoDirExists(t, workspace)
	_, err = os.Stat(workspace)
	require.True(t, os.IsNotExist(err))
}
