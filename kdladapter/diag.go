package kdladapter

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/internal/configfile"
	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// diag collects the errors and warnings of one adaptation. Every entry
// carries the position of the KDL node or value it is about.
type diag struct {
	errs  []finding
	warns []finding
	// secrets are the values that came from environment variables, with
	// the reference each came from: messages show the reference.
	secrets []redaction
}

// redaction pairs a value taken from the environment with the text it
// was written as (`${NAME}`, or the whole string it was expanded in).
type redaction struct{ value, ref string }

// minRedactLen is the length from which a value from the environment is
// hidden wherever it appears in a message; shorter ones (which cannot be
// secrets worth the name, and would mangle messages: "1", "on") are
// hidden where a message quotes them whole.
const minRedactLen = 4

// finding is one error or warning.
type finding struct {
	pos kdl.Position
	// where is the dotted block path of the setting, e.g.
	// "upstreams.upstream.timeouts".
	where string
	msg   string
}

func (f finding) String() string {
	return f.pos.String() + ": " + f.msg
}

func (d *diag) errorf(pos kdl.Position, format string, args ...any) {
	d.errs = append(d.errs, finding{pos: pos, msg: d.scrub(fmt.Sprintf(format, args...))})
}

func (d *diag) warnf(pos kdl.Position, where, format string, args ...any) {
	d.warns = append(d.warns, finding{pos: pos, where: where, msg: d.scrub(fmt.Sprintf(format, args...))})
}

// redact records a value that came from the environment: from now on,
// messages show ref where they would show value.
func (d *diag) redact(value, ref string) {
	if value == "" || value == ref {
		return
	}
	for _, r := range d.secrets {
		if r.value == value {
			return
		}
	}
	d.secrets = append(d.secrets, redaction{value: value, ref: ref})
}

// scrub replaces, in msg, the values that came from the environment by
// their references. Every check of the adapter reports through errorf or
// warnf, so no message can show such a value, whatever quotes it and
// wherever it is checked. Longer values are replaced first, in one pass.
func (d *diag) scrub(msg string) string {
	if len(d.secrets) == 0 {
		return msg
	}
	rs := append([]redaction(nil), d.secrets...)
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].value) > len(rs[j].value) })
	var pairs []string
	for _, r := range rs {
		quoted := strconv.Quote(r.value)
		pairs = append(pairs, quoted, strconv.Quote(r.ref), "`"+r.value+"`", "`"+r.ref+"`")
		if len(r.value) >= minRedactLen {
			if inner := quoted[1 : len(quoted)-1]; inner != r.value {
				pairs = append(pairs, inner, r.ref)
			}
			pairs = append(pairs, r.value, r.ref)
		}
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// notYet records the error for a feature that a later module will bring:
// "not supported yet: <feature>", followed by " — <detail>" when given.
func (d *diag) notYet(pos kdl.Position, feature, detail string) {
	if detail != "" {
		d.errorf(pos, "not supported yet: %s — %s", feature, detail)
		return
	}
	d.errorf(pos, "not supported yet: %s", feature)
}

// err returns all errors as one, in source order, or nil.
func (d *diag) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	errs := append([]finding(nil), d.errs...)
	sort.SliceStable(errs, func(i, j int) bool { return posLess(errs[i].pos, errs[j].pos) })
	lines := make([]string, 0, len(errs))
	seen := make(map[string]bool)
	for _, e := range errs {
		s := e.String()
		if seen[s] {
			continue
		}
		seen[s] = true
		lines = append(lines, s)
	}
	return &ConfigError{Findings: lines}
}

// warnings converts the collected warnings for Caddy.
func (d *diag) warnings() []caddyconfig.Warning {
	ws := append([]finding(nil), d.warns...)
	sort.SliceStable(ws, func(i, j int) bool { return posLess(ws[i].pos, ws[j].pos) })
	out := make([]caddyconfig.Warning, 0, len(ws))
	for _, w := range ws {
		out = append(out, caddyconfig.Warning{
			File: w.pos.File,
			Line: int(w.pos.Line),
			// Copies: strings of the configuration share its source
			// (kdl.Options.ShareSource), which the caller owns again
			// once Adapt returns.
			Directive: strings.Clone(w.where),
			Message:   strings.Clone(w.msg),
		})
	}
	return out
}

func posLess(a, b kdl.Position) bool {
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Col < b.Col
}

// ConfigError is the error of a configuration that cannot be adapted. It
// lists every problem found, each as "file:line:col: message" (see
// configfile.Error, which the sentinel app reads without importing this
// package).
type ConfigError = configfile.Error

// suggest returns " (did you mean \"x\"?)" for the candidate closest to
// name, or "" when none is close.
func suggest(name string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(name), strings.ToLower(c))
		if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	limit := len(name) / 3
	if limit < 2 {
		limit = 2
	}
	if best == "" || bestDist > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// misspelled reports whether block has a child whose name is a near miss
// of key (the unknown-setting error already suggests key for it).
func misspelled(block *kdl.Node, key string) bool {
	for _, c := range block.Children {
		if c.Name != key && suggest(c.Name, []string{key}) != "" {
			return true
		}
	}
	return false
}
