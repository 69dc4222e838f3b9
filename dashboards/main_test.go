package dashboards_test

import (
	"testing"

	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// TestMain lets the test binary act as the runtime inside the sandboxes.
func TestMain(m *testing.M) { systemtest.Main(m) }
