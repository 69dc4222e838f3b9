package api

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOffloadBoundsWorkAtOnce(t *testing.T) {
	t.Parallel()
	s := &Server{working: make(chan struct{}, 2)}
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	count := func() int { mu.Lock(); defer mu.Unlock(); return running }
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.offload(context.Background(), func() error {
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				<-release
				mu.Lock()
				running--
				mu.Unlock()
				return nil
			})
			assert.NoError(t, err)
		}()
	}
	require.Eventually(t, func() bool { return count() == 2 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.Equal(t, 2, most)
}

func TestOffloadReturnsErrorAndRaisesPanic(t *testing.T) {
	t.Parallel()
	s := &Server{working: make(chan struct{}, 1)}
	boom := errors.New("boom")
	require.ErrorIs(t, s.offload(context.Background(), func() error { return boom }), boom)
	// The panic is raised again in the caller, with where it happened.
	defer func() {
		p := recover()
		require.ErrorContains(t, p.(error), "oops")
		require.ErrorContains(t, p.(error), "stack_test.go")
	}()
	s.offload(context.Background(), func() error { panic("oops") })
}

func TestOffloadSkipsWorkOfClientGone(t *testing.T) {
	t.Parallel()
	s := &Server{working: make(chan struct{}, 1)}
	s.working <- struct{}{} // all busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.offload(ctx, func() error { called = true; return nil })
	require.ErrorIs(t, err, errClientGone)
	require.False(t, called)
}
