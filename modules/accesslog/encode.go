package accesslog

import (
	"github.com/sentinel-proxy/sentinel/internal/logring"
	"slices"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// Clone copies the encoder, with its context fields; the copy shares the
// embedded JSON encoder (which is never modified) and the buffer pool.
func (e *Encoder) Clone() zapcore.Encoder {
	clone := *e
	clone.context = slices.Clone(e.context)
	return &clone
}

// EncodeEntry encodes an entry with its fields and the encoder's context
// fields. An access log entry (one with a `request` object, as Caddy's
// HTTP server writes them) becomes one line in the configured style; any
// other entry is encoded as JSON by the embedded encoder.
func (e *Encoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	m := zapcore.NewMapObjectEncoder()
	collect(m, e.context)
	collect(m, fields)
	rec, ok := newRecord(ent, m.Fields, e.InstanceID)
	if !ok {
		return e.encodeJSON(ent, fields)
	}
	buf := e.pool.Get()
	if e.Style == StyleCombined {
		rec.appendCombined(buf)
	} else {
		rec.appendJSON(buf)
	}
	buf.AppendByte('\n')
	// The admin UI's live view keeps the recent lines (bounded).
	logring.Access.Add(buf.Bytes())
	return buf, nil
}

// collect adds the fields the encoder reads to m, skipping the others
// (such as Caddy's `resp_headers`) to save their marshaling. Namespaces
// are kept, so that fields nested in one are not taken for top-level
// fields.
func collect(m *zapcore.MapObjectEncoder, fields []zapcore.Field) {
	for _, f := range fields {
		if f.Type == zapcore.NamespaceType || isRead(f.Key) {
			f.AddTo(m)
		}
	}
}

// encodeJSON encodes an entry that is not an access log entry with the
// embedded JSON encoder, on a clone that gets the context fields first.
func (e *Encoder) encodeJSON(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	enc := e.Encoder.Clone()
	for _, f := range e.context {
		f.AddTo(enc)
	}
	return enc.EncodeEntry(ent, fields)
}
