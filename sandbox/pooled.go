package sandbox

import (
	"sync"
	"time"
)

// pooled is a sandbox the pool handed out: the driver's sandbox, plus the
// pool's metrics and optional deadline.
type pooled struct {
	Sandbox
	pool  *Pool
	timer *time.Timer

	destroy    sync.Once
	destroyErr error
	oom        sync.Once
}

func (p *Pool) handOut(sb Sandbox) Sandbox {
	s := &pooled{Sandbox: sb, pool: p}
	if d := p.cfg.Deadline; d > 0 {
		s.timer = time.AfterFunc(d, func() {
			p.logger.Warn("sandbox pool: destroying a sandbox at the pool's deadline", "sandbox", sb.ID(), "deadline", d)
			s.destroyOnce()
		})
	}
	return s
}

func (s *pooled) Wait() Exit {
	exit := s.Sandbox.Wait()
	s.countOOM(exit)
	return exit
}

func (s *pooled) Destroy() error {
	if s.timer != nil {
		s.timer.Stop()
	}
	return s.destroyOnce()
}

func (s *pooled) destroyOnce() error {
	s.destroy.Do(func() {
		s.destroyErr = s.pool.destroy(s.Sandbox)
		s.countOOM(s.Sandbox.Wait()) // at once: the runtime is dead
	})
	return s.destroyErr
}

func (s *pooled) countOOM(exit Exit) {
	if exit.OOMKilled {
		s.oom.Do(func() { s.pool.metrics.oomKills.WithLabelValues(s.pool.driver.Name()).Inc() })
	}
}

// MemoryLimitHit says whether the sandbox's memory limit killed a process so
// far, if the driver's sandbox says.
func (s *pooled) MemoryLimitHit() bool { return MemoryLimitHit(s.Sandbox) }

// Done is closed when the runtime has exited, if the driver's sandbox says.
func (s *pooled) Done() <-chan struct{} {
	if d, ok := s.Sandbox.(interface{ Done() <-chan struct{} }); ok {
		return d.Done()
	}
	return nil
}
