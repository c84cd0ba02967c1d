package kdladapter

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// The field declarations of the blocks of routes, filters, agents and
// plugins (typed.go has the general ones).

// open marks the setting's block as free-form (not checked by the
// walker).
func (f field[T]) open() field[T] {
	f.key.Open = true
	return f
}

// choiceField is a string setting that is one of allowed (compared
// case-insensitively, written in lower case).
func choiceField[T any](name, note string, p func(*T) *string, allowed ...string) field[T] {
	return fieldOf(name, note, func(a *adapter, n *kdl.Node) (string, bool) {
		s, ok := a.str(n)
		if !ok {
			return "", false
		}
		return a.oneOf(n, s, allowed...)
	}, p)
}

// millisField is an integer number of milliseconds.
func millisField[T any](name, note string, p func(*T) *caddy.Duration) field[T] {
	return fieldOf(name, note, (*adapter).millisDuration, p)
}

// secondsField is an integer number of seconds.
func secondsField[T any](name, note string, p func(*T) *caddy.Duration) field[T] {
	return fieldOf(name, note, (*adapter).secondsDuration, p)
}

// sizeField is a byte size ("10MB" or a number of bytes).
func sizeField[T any](name, note string, p func(*T) *int64) field[T] {
	return fieldOf(name, note, (*adapter).byteSize, p)
}

// configField is a free-form block delivered to a guest (an agent, a
// plugin) as JSON (see kdlObject).
func configField[T any](name, note string, p func(*T) *json.RawMessage) field[T] {
	return fieldOf(name, note, func(_ *adapter, n *kdl.Node) (json.RawMessage, bool) {
		return encode(nil, kdlObject(n)), true
	}, p).open()
}

// plainField declares a setting of a block that is not a field of the
// module's struct (a block mapped onto several handlers keeps such
// settings beside the module's struct): k is its schema entry, read how
// it is read into T.
func plainField[T any](k *Key, read func(a *adapter, n *kdl.Node, t *T)) field[T] {
	return field[T]{key: k, read: read}
}

// secondsDuration reads an integer number of seconds.
func (a *adapter) secondsDuration(n *kdl.Node) (caddy.Duration, bool) {
	i, ok := a.integer(n, 0, 1<<31)
	return caddy.Duration(i) * caddy.Duration(1e9), ok
}
