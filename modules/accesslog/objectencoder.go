package accesslog

import (
	"bytes"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The zapcore.ObjectEncoder methods below receive the fields that are
// added to the encoder itself, rather than passed to EncodeEntry: zap
// calls them on a clone of the encoder for a logger's With (and WithLazy)
// fields. Caddy adds the access log's `request` object that way, so the
// encoder keeps every such field, in order, and reads them together with
// the entry's own fields when it encodes an entry. (Forwarding them to the
// embedded JSON encoder instead would lose them for access log lines.)
//
// Objects and arrays are kept as their marshalers and marshaled when an
// entry is encoded, which is what zap's WithLazy does too; byte slices are
// copied, since the caller may reuse them.

// addField appends f to the encoder's context fields.
func (e *Encoder) addField(f zapcore.Field) {
	e.context = append(e.context, f)
}

// AddArray is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddArray(key string, marshaler zapcore.ArrayMarshaler) error {
	e.addField(zap.Array(key, marshaler))
	return nil
}

// AddObject is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddObject(key string, marshaler zapcore.ObjectMarshaler) error {
	e.addField(zap.Object(key, marshaler))
	return nil
}

// AddBinary is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddBinary(key string, value []byte) {
	e.addField(zap.Binary(key, bytes.Clone(value)))
}

// AddByteString is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddByteString(key string, value []byte) {
	e.addField(zap.ByteString(key, bytes.Clone(value)))
}

// AddBool is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddBool(key string, value bool) {
	e.addField(zap.Bool(key, value))
}

// AddComplex128 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddComplex128(key string, value complex128) {
	e.addField(zap.Complex128(key, value))
}

// AddComplex64 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddComplex64(key string, value complex64) {
	e.addField(zap.Complex64(key, value))
}

// AddDuration is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddDuration(key string, value time.Duration) {
	e.addField(zap.Duration(key, value))
}

// AddFloat64 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddFloat64(key string, value float64) {
	e.addField(zap.Float64(key, value))
}

// AddFloat32 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddFloat32(key string, value float32) {
	e.addField(zap.Float32(key, value))
}

// AddInt is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddInt(key string, value int) {
	e.addField(zap.Int(key, value))
}

// AddInt64 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddInt64(key string, value int64) {
	e.addField(zap.Int64(key, value))
}

// AddInt32 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddInt32(key string, value int32) {
	e.addField(zap.Int32(key, value))
}

// AddInt16 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddInt16(key string, value int16) {
	e.addField(zap.Int16(key, value))
}

// AddInt8 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddInt8(key string, value int8) {
	e.addField(zap.Int8(key, value))
}

// AddString is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddString(key, value string) {
	e.addField(zap.String(key, value))
}

// AddTime is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddTime(key string, value time.Time) {
	e.addField(zap.Time(key, value))
}

// AddUint is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddUint(key string, value uint) {
	e.addField(zap.Uint(key, value))
}

// AddUint64 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddUint64(key string, value uint64) {
	e.addField(zap.Uint64(key, value))
}

// AddUint32 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddUint32(key string, value uint32) {
	e.addField(zap.Uint32(key, value))
}

// AddUint16 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddUint16(key string, value uint16) {
	e.addField(zap.Uint16(key, value))
}

// AddUint8 is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddUint8(key string, value uint8) {
	e.addField(zap.Uint8(key, value))
}

// AddUintptr is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddUintptr(key string, value uintptr) {
	e.addField(zap.Uintptr(key, value))
}

// AddReflected is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) AddReflected(key string, value any) error {
	e.addField(zap.Reflect(key, value))
	return nil
}

// OpenNamespace is part of the zapcore.ObjectEncoder interface.
func (e *Encoder) OpenNamespace(key string) {
	e.addField(zap.Namespace(key))
}

// Interface guards
var (
	_ zapcore.ObjectEncoder = (*Encoder)(nil)
)
