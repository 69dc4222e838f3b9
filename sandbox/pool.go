package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolConfig configures a Pool. Zero values mean the documented defaults.
type PoolConfig struct {
	// Driver creates the sandboxes. Required.
	Driver Driver

	// Warm is how many sandboxes of each class in Classes the pool keeps
	// created ahead, runtime started and waiting on stdin. Default 2; a
	// negative value keeps none, so every Acquire creates one cold. Set it to
	// the worker's concurrency to serve a burst without a miss.
	Warm int

	// Classes are the sizes kept warm. Default: the default spec alone. An
	// Acquire of another size creates its sandbox cold.
	Classes []Spec

	// Deadline, when set, destroys a sandbox that long after Acquire, whatever
	// its user does: a safety net behind the worker's own run deadline. Default
	// none.
	Deadline time.Duration

	// Registerer receives the pool's metrics (oneshot_sandbox_*). Default none.
	Registerer prometheus.Registerer

	// Logger receives warnings about failed creations. Default slog.Default().
	Logger *slog.Logger
}

// DefaultWarm is PoolConfig.Warm's default.
const DefaultWarm = 2

var errPoolClosed = errors.New("acquire sandbox: pool closed")

// Pool is the worker's only way to get a sandbox. It keeps a few sandboxes of
// each configured size warm and refills them in the background. A sandbox it
// hands out is never handed out again.
type Pool struct {
	driver  Driver
	cfg     PoolConfig
	logger  *slog.Logger
	metrics *metrics

	ctx    context.Context // ends at Close: stops refills
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	classes map[string]*warmClass
	changed chan struct{} // closed and replaced when a warm count changes
}

// warmClass holds the warm sandboxes of one size.
type warmClass struct {
	spec  Spec
	ready []Sandbox     // oldest first; guarded by Pool.mu
	kick  chan struct{} // wakes the refill
}

// NewPool returns a pool over the configured driver and starts filling it.
// Call Close to destroy what it holds.
func NewPool(cfg PoolConfig) *Pool {
	cfg.Warm = cmp.Or(cfg.Warm, DefaultWarm)
	if len(cfg.Classes) == 0 {
		cfg.Classes = []Spec{{}}
	}
	logger := cmp.Or(cfg.Logger, slog.Default())
	p := &Pool{
		driver:  cfg.Driver,
		cfg:     cfg,
		logger:  logger,
		metrics: newMetrics(cfg.Registerer),
		classes: map[string]*warmClass{},
		changed: make(chan struct{}),
	}
	if cfg.Driver != nil {
		// Counters of problems start at zero, so rates and alerts see them
		// before the first one.
		name := cfg.Driver.Name()
		p.metrics.misses.WithLabelValues(name)
		p.metrics.oomKills.WithLabelValues(name)
		p.metrics.createFailures.WithLabelValues(name)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.Warm < 0 {
		return p
	}
	for _, spec := range cfg.Classes {
		spec = spec.WithDefaults()
		if p.classes[spec.Class()] != nil {
			continue
		}
		c := &warmClass{spec: spec, kick: make(chan struct{}, 1)}
		p.classes[spec.Class()] = c
		p.metrics.warm.WithLabelValues(spec.Class()).Set(0)
		p.wg.Add(1)
		go p.refill(c)
	}
	return p
}

// Driver returns the driver the pool creates sandboxes with.
func (p *Pool) Driver() Driver { return p.driver }

// Acquire returns a sandbox of the given size that no run has used: a warm
// one when the pool holds one, else one created now.
func (p *Pool) Acquire(ctx context.Context, spec Spec) (Sandbox, error) {
	start := time.Now()
	spec = spec.WithDefaults()
	sb, err := p.take(spec.Class())
	if err != nil {
		return nil, err
	}
	if sb != nil {
		p.metrics.acquireSeconds.WithLabelValues(p.driver.Name(), "hit").Observe(time.Since(start).Seconds())
		return p.handOut(sb), nil
	}
	p.metrics.misses.WithLabelValues(p.driver.Name()).Inc()
	if sb, err = p.create(ctx, spec); err != nil {
		return nil, fmt.Errorf("acquire sandbox: %w", err)
	}
	p.metrics.acquireSeconds.WithLabelValues(p.driver.Name(), "miss").Observe(time.Since(start).Seconds())
	return p.handOut(sb), nil
}

// take removes a live warm sandbox of the class from the pool, if it holds one.
func (p *Pool) take(class string) (Sandbox, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	c := p.classes[class]
	if c == nil {
		return nil, nil
	}
	defer p.changedLocked(c)
	for len(c.ready) > 0 {
		sb := c.ready[0]
		c.ready = c.ready[1:]
		if !exited(sb) {
			return sb, nil
		}
		// Its runtime died while waiting: never hand it out.
		p.logger.Warn("sandbox pool: a warm sandbox's runtime had exited", "sandbox", sb.ID(), "exit", sb.Wait().String())
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.destroy(sb)
		}()
	}
	return nil, nil
}

// exited says whether a sandbox's runtime has ended, when the sandbox can tell.
func exited(sb Sandbox) bool {
	d, ok := sb.(interface{ Done() <-chan struct{} })
	if !ok {
		return false
	}
	select {
	case <-d.Done():
		return true
	default:
		return false
	}
}

// refill keeps a class's warm sandboxes at cfg.Warm until Close.
func (p *Pool) refill(c *warmClass) {
	defer p.wg.Done()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 10 * time.Second
	backoff := minBackoff
	for {
		for p.short(c) {
			sb, err := p.create(p.ctx, c.spec)
			if p.ctx.Err() != nil {
				if err == nil {
					p.destroy(sb)
				}
				return
			}
			if err != nil {
				p.logger.Warn("sandbox pool: create a warm sandbox", "class", c.spec.Class(), "err", err, "retry_in", backoff)
				select {
				case <-p.ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			backoff = minBackoff
			if !p.put(c, sb) {
				p.destroy(sb)
				return
			}
		}
		select {
		case <-p.ctx.Done():
			return
		case <-c.kick:
		}
	}
}

func (p *Pool) short(c *warmClass) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && len(c.ready) < p.cfg.Warm
}

func (p *Pool) put(c *warmClass, sb Sandbox) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	c.ready = append(c.ready, sb)
	p.changedLocked(c)
	return true
}

// changedLocked publishes a class's new warm count and wakes its refill.
func (p *Pool) changedLocked(c *warmClass) {
	p.metrics.warm.WithLabelValues(c.spec.Class()).Set(float64(len(c.ready)))
	close(p.changed)
	p.changed = make(chan struct{})
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// create creates a sandbox, with metrics.
func (p *Pool) create(ctx context.Context, spec Spec) (Sandbox, error) {
	start := time.Now()
	sb, err := p.driver.Create(ctx, spec)
	if err != nil {
		p.metrics.createFailures.WithLabelValues(p.driver.Name()).Inc()
		return nil, err
	}
	p.metrics.createSeconds.WithLabelValues(p.driver.Name()).Observe(time.Since(start).Seconds())
	return sb, nil
}

// destroy destroys a sandbox the pool still holds, with metrics.
func (p *Pool) destroy(sb Sandbox) error {
	start := time.Now()
	err := sb.Destroy()
	p.metrics.destroySeconds.WithLabelValues(p.driver.Name()).Observe(time.Since(start).Seconds())
	return err
}

// Close stops the refills and destroys the warm sandboxes. Sandboxes already
// handed out stay their users' to destroy.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var held []Sandbox
	for _, c := range p.classes {
		held = append(held, c.ready...)
		c.ready = nil
		p.changedLocked(c)
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	var errs []error
	for _, sb := range held {
		errs = append(errs, p.destroy(sb))
	}
	return errors.Join(errs...)
}

// waitWarm waits until the pool holds n warm sandboxes of the spec's class.
func (p *Pool) waitWarm(ctx context.Context, spec Spec, n int) error {
	for {
		p.mu.Lock()
		c, changed := p.classes[spec.WithDefaults().Class()], p.changed
		have := 0
		if c != nil {
			have = len(c.ready)
		}
		p.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d warm sandboxes (have %d): %w", n, have, ctx.Err())
		}
	}
}
