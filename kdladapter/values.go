package kdladapter

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// obj is a JSON object under construction. encoding/json sorts map keys,
// which keeps the adapter's output deterministic.
type obj = map[string]any

// setting returns the first child of block named name (the original's
// "first one wins" rule), or nil.
func setting(block *kdl.Node, name string) *kdl.Node {
	if block == nil {
		return nil
	}
	for _, c := range block.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// settings returns every child of block named name.
func settings(block *kdl.Node, name string) []*kdl.Node {
	if block == nil {
		return nil
	}
	var out []*kdl.Node
	for _, c := range block.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// arg returns the first argument of n, or for settings written as a
// single property (`unix-socket path="…"`) that property's value.
func (a *adapter) arg(n *kdl.Node) (kdl.Value, bool) {
	if len(n.Args) > 0 {
		return n.Args[0], true
	}
	a.d.errorf(n.Pos, "%s needs a value", n.Name)
	return kdl.Value{}, false
}

// str reads the string value of setting n.
func (a *adapter) str(n *kdl.Node) (string, bool) {
	v, ok := a.arg(n)
	if !ok {
		return "", false
	}
	if v.Kind != kdl.KindString {
		a.d.errorf(v.Pos, "%s takes a string, not %s %s", n.Name, v.Kind, v)
		return "", false
	}
	return v.Str, true
}

// strs reads every argument of n as strings.
func (a *adapter) strs(n *kdl.Node) []string {
	out := make([]string, 0, len(n.Args))
	for _, v := range n.Args {
		if v.Kind != kdl.KindString {
			a.d.errorf(v.Pos, "%s takes strings, not %s %s", n.Name, v.Kind, v)
			continue
		}
		out = append(out, v.Str)
	}
	if len(n.Args) == 0 {
		a.d.errorf(n.Pos, "%s needs at least one value", n.Name)
	}
	return out
}

// integer reads the integer value of setting n, checking it is in
// [lo, hi].
func (a *adapter) integer(n *kdl.Node, lo, hi int64) (int64, bool) {
	v, ok := a.arg(n)
	if !ok {
		return 0, false
	}
	i, ok := v.AsInt64()
	if !ok {
		a.d.errorf(v.Pos, "%s takes an integer, not %s %s", n.Name, v.Kind, v)
		return 0, false
	}
	if i < lo || i > hi {
		a.d.errorf(v.Pos, "%s must be between %d and %d, not %d", n.Name, lo, hi, i)
		return 0, false
	}
	return i, true
}

// ints reads every argument of n as integers in [lo, hi].
func (a *adapter) ints(n *kdl.Node, lo, hi int64) []int64 {
	var out []int64
	for _, v := range n.Args {
		i, ok := v.AsInt64()
		if !ok || i < lo || i > hi {
			a.d.errorf(v.Pos, "%s takes integers between %d and %d, not %s", n.Name, lo, hi, v)
			continue
		}
		out = append(out, i)
	}
	if len(n.Args) == 0 {
		a.d.errorf(n.Pos, "%s needs at least one value", n.Name)
	}
	return out
}

// number reads a float value.
func (a *adapter) number(n *kdl.Node) (float64, bool) {
	v, ok := a.arg(n)
	if !ok {
		return 0, false
	}
	f, ok := v.AsFloat64()
	if !ok {
		a.d.errorf(v.Pos, "%s takes a number, not %s %s", n.Name, v.Kind, v)
	}
	return f, ok
}

// boolean reads the boolean value of setting n. A bare node (`websocket`
// with no value) means #true, as in the original's agent config blocks.
func (a *adapter) boolean(n *kdl.Node) (bool, bool) {
	if len(n.Args) == 0 {
		return true, true
	}
	v := n.Args[0]
	if v.Kind != kdl.KindBool {
		a.d.errorf(v.Pos, "%s takes #true or #false, not %s %s", n.Name, v.Kind, v)
		return false, false
	}
	return v.Bool, true
}

// seconds reads an integer number of seconds as a Caddy duration string.
func (a *adapter) seconds(n *kdl.Node) (string, bool) {
	i, ok := a.integer(n, 0, 1<<31)
	if !ok {
		return "", false
	}
	return dur(time.Duration(i) * time.Second), true
}

// millis reads an integer number of milliseconds as a duration string.
func (a *adapter) millis(n *kdl.Node) (string, bool) {
	i, ok := a.integer(n, 0, 1<<40)
	if !ok {
		return "", false
	}
	return dur(time.Duration(i) * time.Millisecond), true
}

// duration reads a duration given as a number of seconds or as a string
// like "30s", "5m", "1h", "1d", "250ms".
func (a *adapter) duration(n *kdl.Node) (string, bool) {
	v, ok := a.arg(n)
	if !ok {
		return "", false
	}
	if v.Kind == kdl.KindNumber {
		return a.seconds(n)
	}
	if v.Kind != kdl.KindString {
		a.d.errorf(v.Pos, "%s takes a duration like \"30s\", not %s", n.Name, v)
		return "", false
	}
	d, err := parseDuration(v.Str)
	if err != nil {
		a.d.errorf(v.Pos, "%s: %v", n.Name, err)
		return "", false
	}
	return dur(d), true
}

// parseDuration accepts Go durations and the original's unit words.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	num, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || i == 0 {
		return 0, fmt.Errorf("invalid duration %q (examples: \"30s\", \"5m\", \"1h\", \"1d\")", s)
	}
	unit := strings.ToLower(strings.TrimSpace(s[i:]))
	var mult time.Duration
	switch unit {
	case "", "s", "sec", "secs", "second", "seconds":
		mult = time.Second
	case "m", "min", "mins", "minute", "minutes":
		mult = time.Minute
	case "h", "hr", "hrs", "hour", "hours":
		mult = time.Hour
	case "d", "day", "days":
		mult = 24 * time.Hour
	default:
		return 0, fmt.Errorf("invalid duration unit %q in %q", unit, s)
	}
	return time.Duration(num) * mult, nil
}

// dur renders a duration the way Caddy's JSON accepts it.
func dur(d time.Duration) string { return d.String() }

// byteSize reads a size given as an integer number of bytes or a string
// like "10MB", "512KiB", "1G".
func (a *adapter) byteSize(n *kdl.Node) (int64, bool) {
	v, ok := a.arg(n)
	if !ok {
		return 0, false
	}
	if v.Kind == kdl.KindNumber {
		return a.integer(n, 0, 1<<62)
	}
	if v.Kind != kdl.KindString {
		a.d.errorf(v.Pos, "%s takes a size like \"10MB\" or a number of bytes, not %s", n.Name, v)
		return 0, false
	}
	sz, err := parseSize(v.Str)
	if err != nil {
		a.d.errorf(v.Pos, "%s: %v", n.Name, err)
		return 0, false
	}
	return sz, true
}

// parseSize parses "10MB", "10MiB", "512k", "1G", "123" (bytes). Decimal
// and binary suffixes both mean powers of 1024, as the original did.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, err := strconv.ParseFloat(t[:i], 64)
	if err != nil || num < 0 {
		return 0, fmt.Errorf("invalid size %q (examples: \"10MB\", \"512KiB\", 1048576)", s)
	}
	unit := strings.TrimSpace(t[i:])
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "IB"), "B")
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size unit in %q (use B, KB, MB, GB, TB)", s)
	}
	return int64(num * mult), nil
}

// oneOf checks that s (compared case-insensitively) is one of allowed and
// returns its canonical (lower-case) form.
func (a *adapter) oneOf(n *kdl.Node, s string, allowed ...string) (string, bool) {
	l := strings.ToLower(s)
	for _, x := range allowed {
		if l == x {
			return x, true
		}
	}
	pos := n.Pos
	if len(n.Args) > 0 {
		pos = n.Args[0].Pos
	}
	a.d.errorf(pos, "%s %q is not one of %s%s", n.Name, s, strings.Join(allowed, ", "), suggest(l, allowed))
	return "", false
}
