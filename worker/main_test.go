package worker_test

import (
	"testing"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

func TestMain(m *testing.M) { systemtest.Main(m) }
