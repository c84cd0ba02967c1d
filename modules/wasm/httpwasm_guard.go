package wasm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/http-wasm/http-wasm-host-go/api"
	"github.com/tetratelabs/wazero"
	wapi "github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The http-wasm host (handler/nethttp) calls the guest's handle_request
// and handle_response itself, answers a failed handle_request with 500 and
// the error's text, panics on a failed handle_response (the connection
// closes without a response) and keeps a failed guest in its pool. The
// types of this file put Sentinel's rules back in between: the runtime
// given to the host is wrapped so that each guest call gets the plugin's
// deadline, is counted and timed, records its failure for the stage
// (failure_mode), and a guest whose call failed is replaced by a fresh
// instance before its next call.

// guardedRuntime is the runtime of an http-wasm middleware.
type guardedRuntime struct {
	wazero.Runtime
	names atomic.Uint64
}

// InstantiateModule instantiates a guest and wraps it.
func (rt *guardedRuntime) InstantiateModule(ctx context.Context, compiled wazero.CompiledModule, cfg wazero.ModuleConfig) (wapi.Module, error) {
	mod, err := rt.Runtime.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		if t := httpWasmStateOf(ctx); t != nil {
			t.fail(phaseRequestHeaders, "instantiate", err)
		}
		return nil, err
	}
	return &guardedModule{Module: mod, rt: rt, compiled: compiled, cfg: cfg}, nil
}

// guardedModule is a guest instance; after a failed call its next call
// runs on a new instance.
type guardedModule struct {
	wapi.Module
	rt       *guardedRuntime
	compiled wazero.CompiledModule
	cfg      wazero.ModuleConfig
	mu       sync.Mutex
	broken   bool
}

// ExportedFunction returns a guarded function for the two handlers, the
// function itself for anything else.
func (m *guardedModule) ExportedFunction(name string) wapi.Function {
	switch name {
	case "handle_request":
		return &guardedFunction{m: m, name: name, phase: phaseRequestHeaders}
	case "handle_response":
		return &guardedFunction{m: m, name: name, phase: phaseResponseHeaders}
	}
	return m.Module.ExportedFunction(name)
}

// current returns the instance to call, instantiating a new one if the
// last call failed.
func (m *guardedModule) current() (wapi.Module, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.broken {
		return m.Module, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), instantiateTimeout)
	defer cancel()
	_ = m.Module.Close(ctx)
	name := fmt.Sprintf("sentinel-renewed-%d", m.rt.names.Add(1))
	mod, err := m.rt.Runtime.InstantiateModule(ctx, m.compiled, m.cfg.WithName(name))
	if err != nil {
		return nil, fmt.Errorf("instantiating a new guest after a failure: %w", err)
	}
	m.Module, m.broken = mod, false
	return mod, nil
}

// guardedFunction is handle_request or handle_response of a guest.
type guardedFunction struct {
	wapi.Function
	m     *guardedModule
	name  string
	phase int
}

// Definition is that of the current instance's function.
func (f *guardedFunction) Definition() wapi.FunctionDefinition {
	mod, err := f.m.current()
	if err != nil {
		return nil
	}
	return mod.ExportedFunction(f.name).Definition()
}

// Call calls the guest with the plugin's deadline, records the call in
// the plugin's metrics and a failure in the request's state.
func (f *guardedFunction) Call(ctx context.Context, params ...uint64) ([]uint64, error) {
	t := httpWasmStateOf(ctx)
	mod, err := f.m.current()
	if err != nil {
		if t != nil {
			t.fail(f.phase, "instantiate", err)
		}
		return nil, err
	}
	fn := mod.ExportedFunction(f.name)
	if t == nil {
		return fn.Call(ctx, params...)
	}
	p := t.p
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	start := time.Now()
	res, err := fn.Call(ctx, params...)
	cancel()
	p.calls[f.phase].latency.Observe(time.Since(start).Seconds())
	p.calls[f.phase].calls.Inc()
	if err == nil {
		return res, nil
	}
	f.m.mu.Lock()
	f.m.broken = true
	f.m.mu.Unlock()
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded {
		p.timeouts.Inc()
		t.fail(f.phase, "timeout", fmt.Errorf("%s: deadline of %s exceeded", f.name, p.timeout))
	} else {
		p.traps.Inc()
		t.fail(f.phase, "trap", fmt.Errorf("%s: %w", f.name, err))
	}
	return nil, err
}

// zapGuestLogger is the http-wasm guests' logger: a guest's log call goes
// to the logger of the plugin serving the request (with the plugin's id),
// at the guest's level; outside a request, to the logger of the plugin
// that loaded the guest.
type zapGuestLogger struct{ fallback *atomic.Pointer[zap.Logger] }

// IsEnabled leaves the level filtering to zap.
func (l zapGuestLogger) IsEnabled(level api.LogLevel) bool { return level < api.LogLevelNone }

// Log writes a guest's message.
func (l zapGuestLogger) Log(ctx context.Context, level api.LogLevel, msg string) {
	logger := l.fallback.Load()
	if t := httpWasmStateOf(ctx); t != nil {
		logger = t.p.logger
	}
	if ce := logger.Check(zapLevel(level), msg); ce != nil {
		ce.Write(zap.String("source", "plugin"))
	}
}

// zapLevel maps an http-wasm log level.
func zapLevel(level api.LogLevel) zapcore.Level {
	switch {
	case level <= api.LogLevelDebug:
		return zapcore.DebugLevel
	case level == api.LogLevelInfo:
		return zapcore.InfoLevel
	case level == api.LogLevelWarn:
		return zapcore.WarnLevel
	}
	return zapcore.ErrorLevel
}

// maxLogLine bounds one logged line of a guest's stdout or stderr.
const maxLogLine = 2048

// logWriter logs what a guest writes to stdout or stderr, a line per
// entry: a partial line is kept until its end (guest runtimes write a
// line in pieces), or until it reaches maxLogLine.
type logWriter struct {
	logger *atomic.Pointer[zap.Logger]
	level  zapcore.Level
	stream string
	mu     *sync.Mutex
	line   *[]byte
}

// newLogWriter returns a logWriter for a stream.
func newLogWriter(logger *atomic.Pointer[zap.Logger], level zapcore.Level, stream string) logWriter {
	return logWriter{logger: logger, level: level, stream: stream, mu: new(sync.Mutex), line: new([]byte)}
}

// Write implements io.Writer.
func (w logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range b {
		if c != '\n' {
			*w.line = append(*w.line, c)
			if len(*w.line) < maxLogLine {
				continue
			}
		}
		if line := strings.TrimRight(string(*w.line), "\r"); line != "" {
			if ce := w.logger.Load().Check(w.level, line); ce != nil {
				ce.Write(zap.String("source", "plugin"), zap.String("stream", w.stream))
			}
		}
		*w.line = (*w.line)[:0]
	}
	return len(b), nil
}
