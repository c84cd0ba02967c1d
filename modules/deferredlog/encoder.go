// Package deferredlog provides the `sentinel_deferred` log encoder: it
// wraps another Caddy log encoder and encodes the fields that a logger
// gets through With only when an entry is actually written.
//
// Caddy's reverse proxy builds a request-scoped logger on every attempt
// (`logger.With(upstream, duration, request)`), and zap's own encoders
// encode those fields at once, the whole request with its headers
// included, even though the logger usually writes nothing (its lines are
// debug lines and errors). That is about 15 allocations and 4–5 % of the
// CPU of a small proxied request. With this encoder, With only records
// the fields (one allocation for up to three of them, what the proxy adds); they are encoded
// by the wrapped encoder when an entry passes the level check and is
// written, so every line the proxy writes is still written, with the
// same fields.
//
// The trade-off: an object, array or reflected field is encoded when the
// entry is written, not when With was called, so it shows the value's
// state at that time (the proxy's request does not change between the
// two). Scalar fields (strings, numbers, times, durations) are copied at
// With and are not affected.
package deferredlog

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/logging"
)

func init() {
	caddy.RegisterModule(Encoder{})
}

// inlineFields is the number of recorded fields a clone holds without a
// second allocation: Caddy's proxy adds three (upstream, duration,
// request), and a clone with three fits the 240-byte size class (four
// took 320, and the module's configuration in each clone 448).
const inlineFields = 3

// Encoder is a Caddy log encoder (a zapcore.Encoder) that defers the
// encoding of a logger's context fields (those added by With) until an
// entry is written, and then encodes the entry with the wrapped encoder:
//
//	"encoder": {"format": "sentinel_deferred", "wrap": {"format": "json"}}
//
// Without `wrap`, it wraps Caddy's default: `json`, or `console` when
// the log goes to a terminal.
type Encoder struct {
	// The encoder that encodes the entries. If not specified, defaults
	// to "json", unless the output is a terminal, in which case it
	// defaults to "console" (as Caddy's default log does).
	WrappedRaw json.RawMessage `json:"wrap,omitempty" caddy:"namespace=caddy.logging.encoders inline_key=format"`

	// lazy is the encoder itself; its clones (one per request-scoped
	// logger) are lazy values alone, without the module's configuration.
	lazy

	wrappedIsDefault bool
	ctx              caddy.Context
}

// lazy is the encoder of Encoder and of its clones: it records the
// context fields and encodes them with wrapped when an entry is written.
type lazy struct {
	// wrapped is the wrapped encoder, with the context fields added
	// before the last Clone that were already encoded (none, normally).
	wrapped zapcore.Encoder
	// fields are the context fields recorded since the encoder was
	// cloned from the wrapped one; buf holds the first ones.
	fields []zapcore.Field
	buf    [inlineFields]zapcore.Field
}

// CaddyModule returns the Caddy module information.
func (Encoder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.encoders.sentinel_deferred",
		New: func() caddy.Module { return new(Encoder) },
	}
}

// Provision sets up the wrapped encoder.
func (e *Encoder) Provision(ctx caddy.Context) error {
	e.ctx = ctx
	if e.WrappedRaw == nil {
		je := &logging.JSONEncoder{}
		if err := je.Provision(ctx); err != nil {
			return fmt.Errorf("sentinel_deferred: provisioning the default json encoder: %w", err)
		}
		e.wrapped, e.wrappedIsDefault = je, true
		return nil
	}
	val, err := ctx.LoadModule(e, "WrappedRaw")
	if err != nil {
		return fmt.Errorf("sentinel_deferred: loading the wrapped encoder: %w", err)
	}
	e.wrapped = val.(zapcore.Encoder)
	return nil
}

// ConfigureDefaultFormat makes the default wrapped encoder `console` when
// the log is written to a terminal, as Caddy does for its default log,
// and passes the writer on to a wrapped encoder that wants it.
func (e *Encoder) ConfigureDefaultFormat(wo caddy.WriterOpener) error {
	if !e.wrappedIsDefault {
		if cfd, ok := e.wrapped.(caddy.ConfiguresFormatterDefault); ok {
			return cfd.ConfigureDefaultFormat(wo)
		}
		return nil
	}
	if caddy.IsWriterStandardStream(wo) && term.IsTerminal(int(os.Stderr.Fd())) {
		ce := &logging.ConsoleEncoder{}
		if err := ce.Provision(e.ctx); err != nil {
			return fmt.Errorf("sentinel_deferred: provisioning the default console encoder: %w", err)
		}
		e.wrapped = ce
	}
	return nil
}

// UnmarshalCaddyfile reads
//
//	sentinel_deferred {
//		wrap <encoder> [<its arguments and block>]
//	}
func (e *Encoder) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the encoder's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if d.Val() != "wrap" {
			return d.Errf("sentinel_deferred: unknown subdirective %q (want wrap)", d.Val())
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		name := d.Val()
		unm, err := caddyfile.UnmarshalModule(d, "caddy.logging.encoders."+name)
		if err != nil {
			return err
		}
		enc, ok := unm.(zapcore.Encoder)
		if !ok {
			return d.Errf("sentinel_deferred: module %s (%T) is not a log encoder", name, unm)
		}
		e.WrappedRaw = caddyconfig.JSONModuleObject(enc, "format", name, nil)
	}
	return nil
}

// Clone returns an encoder with the same context; the fields added to it
// are recorded, not encoded.
func (e *lazy) Clone() zapcore.Encoder {
	c := &lazy{wrapped: e.wrapped}
	c.fields = append(c.buf[:0], e.fields...)
	return c
}

// EncodeEntry encodes the entry with the wrapped encoder, after adding
// the recorded context fields to a clone of it.
func (e *lazy) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	if len(e.fields) == 0 {
		return e.wrapped.EncodeEntry(ent, fields)
	}
	enc := e.wrapped.Clone()
	for i := range e.fields {
		e.fields[i].AddTo(enc)
	}
	return enc.EncodeEntry(ent, fields)
}

// record adds a context field.
func (e *lazy) record(f zapcore.Field) { e.fields = append(e.fields, f) }

// AddArray records an array field, encoded when an entry is written.
func (e *lazy) AddArray(key string, v zapcore.ArrayMarshaler) error {
	e.record(zap.Array(key, v))
	return nil
}

// AddObject records an object field, encoded when an entry is written.
func (e *lazy) AddObject(key string, v zapcore.ObjectMarshaler) error {
	e.record(zap.Object(key, v))
	return nil
}

// AddBinary records a copy of a binary field.
func (e *lazy) AddBinary(key string, v []byte) {
	e.record(zap.Binary(key, append([]byte(nil), v...)))
}

// AddByteString records a copy of a UTF-8 byte string field.
func (e *lazy) AddByteString(key string, v []byte) {
	e.record(zap.ByteString(key, append([]byte(nil), v...)))
}

// AddBool records a field.
func (e *lazy) AddBool(key string, v bool) { e.record(zap.Bool(key, v)) }

// AddComplex128 records a field.
func (e *lazy) AddComplex128(key string, v complex128) { e.record(zap.Complex128(key, v)) }

// AddComplex64 records a field.
func (e *lazy) AddComplex64(key string, v complex64) { e.record(zap.Complex64(key, v)) }

// AddDuration records a field.
func (e *lazy) AddDuration(key string, v time.Duration) { e.record(zap.Duration(key, v)) }

// AddFloat64 records a field.
func (e *lazy) AddFloat64(key string, v float64) { e.record(zap.Float64(key, v)) }

// AddFloat32 records a field.
func (e *lazy) AddFloat32(key string, v float32) { e.record(zap.Float32(key, v)) }

// AddInt records a field.
func (e *lazy) AddInt(key string, v int) { e.record(zap.Int(key, v)) }

// AddInt64 records a field.
func (e *lazy) AddInt64(key string, v int64) { e.record(zap.Int64(key, v)) }

// AddInt32 records a field.
func (e *lazy) AddInt32(key string, v int32) { e.record(zap.Int32(key, v)) }

// AddInt16 records a field.
func (e *lazy) AddInt16(key string, v int16) { e.record(zap.Int16(key, v)) }

// AddInt8 records a field.
func (e *lazy) AddInt8(key string, v int8) { e.record(zap.Int8(key, v)) }

// AddString records a field.
func (e *lazy) AddString(key, v string) { e.record(zap.String(key, v)) }

// AddTime records a field.
func (e *lazy) AddTime(key string, v time.Time) { e.record(zap.Time(key, v)) }

// AddUint records a field.
func (e *lazy) AddUint(key string, v uint) { e.record(zap.Uint(key, v)) }

// AddUint64 records a field.
func (e *lazy) AddUint64(key string, v uint64) { e.record(zap.Uint64(key, v)) }

// AddUint32 records a field.
func (e *lazy) AddUint32(key string, v uint32) { e.record(zap.Uint32(key, v)) }

// AddUint16 records a field.
func (e *lazy) AddUint16(key string, v uint16) { e.record(zap.Uint16(key, v)) }

// AddUint8 records a field.
func (e *lazy) AddUint8(key string, v uint8) { e.record(zap.Uint8(key, v)) }

// AddUintptr records a field.
func (e *lazy) AddUintptr(key string, v uintptr) { e.record(zap.Uintptr(key, v)) }

// AddReflected records a field, encoded (by reflection) when an entry is
// written.
func (e *lazy) AddReflected(key string, v any) error {
	e.record(zap.Reflect(key, v))
	return nil
}

// OpenNamespace records the namespace: the fields after it are nested in
// it.
func (e *lazy) OpenNamespace(key string) { e.record(zap.Namespace(key)) }

// Interface guards
var (
	_ zapcore.Encoder                  = (*Encoder)(nil)
	_ zapcore.Encoder                  = (*lazy)(nil)
	_ caddy.Provisioner                = (*Encoder)(nil)
	_ caddy.ConfiguresFormatterDefault = (*Encoder)(nil)
	_ caddyfile.Unmarshaler            = (*Encoder)(nil)
)
