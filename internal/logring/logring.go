// Package logring keeps the most recent lines of the proxy's logs in
// memory, bounded, for the admin UI's live log view (GET
// /api/v1/logs/{log}): the access log (fed by the sentinel_access
// encoder) and the control-plane audit log (fed by the control-plane
// API's audit logger).
//
// The rings are process-wide, like Caddy's own listener and log pools:
// the writers (a log encoder that Caddy provisions, and each config's API
// server) and the reader are built separately by each config load, and a
// reload must not empty the view. Each ring holds at most Size lines of
// at most MaxLine bytes: memory is bounded whatever the traffic.
package logring

import (
	"sync"

	"go.uber.org/zap/zapcore"
)

// Size is how many lines a ring keeps.
const Size = 1000

// MaxLine is the longest line kept; longer ones are cut (and end with
// "…").
const MaxLine = 4096

// The rings of the process.
var (
	// Access holds the access log's recent lines.
	Access = New(Size)
	// Audit holds the control-plane audit log's recent lines.
	Audit = New(Size)
)

// Line is one log line and its sequence number (1, 2, ... in the order
// the lines were added).
type Line struct {
	// Seq numbers the line; a reader asks for the lines after the last
	// one it has.
	Seq uint64 `json:"seq"`
	// Text is the line, without its newline.
	Text string `json:"text"`
}

// Ring is a bounded ring of log lines, safe for concurrent use.
type Ring struct {
	mu    sync.Mutex
	lines []Line
	// next is where the next line goes once the ring is full.
	next int
	seq  uint64
}

// New returns a ring of n lines.
func New(n int) *Ring {
	return &Ring{lines: make([]Line, 0, n)}
}

// Add adds a line (a trailing newline is dropped; a line longer than
// MaxLine is cut).
func (r *Ring) Add(b []byte) {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	text := string(b)
	if len(b) > MaxLine {
		text = string(b[:MaxLine]) + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	l := Line{Seq: r.seq, Text: text}
	if len(r.lines) < cap(r.lines) {
		r.lines = append(r.lines, l)
		return
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
}

// After returns up to max lines added after seq, oldest first, and the
// sequence number of the last line added (to ask from next time). When
// more than max are newer, the newest max are returned.
func (r *Ring) After(seq uint64, max int) ([]Line, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Line, 0, min(max, len(r.lines)))
	n := len(r.lines)
	for i := 0; i < n; i++ {
		l := r.lines[(r.next+i)%n]
		if l.Seq > seq {
			out = append(out, l)
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out, r.seq
}

// Core returns a zap core that adds every entry, encoded with enc, to r.
func (r *Ring) Core(enc zapcore.Encoder, level zapcore.LevelEnabler) zapcore.Core {
	return &core{ring: r, enc: enc, LevelEnabler: level}
}

// core is a zapcore.Core writing to a ring.
type core struct {
	zapcore.LevelEnabler
	ring *Ring
	enc  zapcore.Encoder
}

func (c *core) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &core{ring: c.ring, enc: enc, LevelEnabler: c.LevelEnabler}
}

func (c *core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(e, fields)
	if err != nil {
		return err
	}
	c.ring.Add(buf.Bytes())
	buf.Free()
	return nil
}

func (c *core) Sync() error { return nil }

// Interface guard
var _ zapcore.Core = (*core)(nil)
