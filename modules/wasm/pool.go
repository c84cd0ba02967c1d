package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// instance is one instantiation of a plugin's module. It handles one
// request at a time: it is taken from the pool for the whole request
// (request and response phases) and returned afterwards, unless a call
// failed, in which case it is closed.
type instance struct {
	mod   api.Module
	hooks [numPhases]api.Function
	state callState
	// stderr keeps what the guest writes to stderr, for errors.
	stderr *stderrTail
	// base carries state to the host functions; a call adds its deadline.
	base context.Context
}

// instancePool keeps a plugin's idle instances. Requests take an idle
// instance or instantiate a new one, so they never wait for each other;
// at most MaxIdleInstances are kept when returned.
type instancePool struct {
	p      *Plugin
	config []byte
	idle   chan *instance
	mu     sync.Mutex
	closed bool
}

func newInstancePool(p *Plugin, config []byte) *instancePool {
	return &instancePool{p: p, config: config, idle: make(chan *instance, p.MaxIdleInstances)}
}

// errPoolClosed is returned for requests still in flight when the config
// that owns the pool has been cleaned up.
var errPoolClosed = errors.New("instance pool closed")

// get returns an idle instance or a new one.
func (ip *instancePool) get(ctx context.Context) (*instance, error) {
	select {
	case inst := <-ip.idle:
		return inst, nil
	default:
		return ip.newInstance(ctx)
	}
}

// newInstance instantiates the module, running its _initialize with the
// plugin's config available to get_config.
func (ip *instancePool) newInstance(ctx context.Context) (*instance, error) {
	ip.mu.Lock()
	closed := ip.closed
	ip.mu.Unlock()
	if closed {
		return nil, errPoolClosed
	}
	m := ip.p.module
	inst := &instance{state: callState{plugin: ip.p, config: ip.config}, stderr: &stderrTail{}}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), instantiateTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, stateKey{}, &inst.state)
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithSysNanotime().
		WithSysWalltime().
		WithRandSource(rand.Reader).
		WithStderr(inst.stderr)
	mod, err := m.runtime.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		ip.p.traps.Inc()
		if msg := inst.stderr.take(); msg != "" {
			return nil, fmt.Errorf("instantiating: %w: %s", err, msg)
		}
		return nil, fmt.Errorf("instantiating: %w", err)
	}
	inst.mod = mod
	inst.base = context.WithValue(context.Background(), stateKey{}, &inst.state)
	for i, name := range hookNames {
		if m.hooks[name] {
			inst.hooks[i] = mod.ExportedFunction(name)
		}
	}
	return inst, nil
}

// put returns a healthy instance to the pool, or closes it if the pool is
// full or closed.
func (ip *instancePool) put(inst *instance) {
	inst.state.reset(nil, nil)
	ip.mu.Lock()
	defer ip.mu.Unlock()
	if !ip.closed {
		select {
		case ip.idle <- inst:
			return
		default:
		}
	}
	inst.close()
}

// close closes the idle instances; instances in use are closed when put.
func (ip *instancePool) close() {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	ip.closed = true
	for {
		select {
		case inst := <-ip.idle:
			inst.close()
		default:
			return
		}
	}
}

func (inst *instance) close() {
	_ = inst.mod.Close(context.Background())
}

// call runs a hook with the plugin's deadline. A trap, exit or timeout is
// counted, logged and returned; the instance must then be discarded.
//
// The call is bounded by the plugin's deadline only, not by the request's
// context: a client going away does not trap a healthy instance.
func (inst *instance) call(phase int) error {
	p := inst.state.plugin
	ctx, cancel := context.WithTimeout(inst.base, p.timeout)
	start := time.Now()
	_, err := inst.hooks[phase].Call(ctx)
	cancel()
	p.calls[phase].latency.Observe(time.Since(start).Seconds())
	p.calls[phase].calls.Inc()
	if err == nil {
		inst.stderr.reset()
		return nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded {
		p.timeouts.Inc()
		return fmt.Errorf("%s: deadline of %s exceeded", hookNames[phase], p.timeout)
	}
	p.traps.Inc()
	if msg := inst.stderr.take(); msg != "" {
		return fmt.Errorf("%s: %w: %s", hookNames[phase], err, msg)
	}
	return fmt.Errorf("%s: %w", hookNames[phase], err)
}
