package kdladapter

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// loader reads a configuration and the files it includes into one list of
// top-level nodes, and expands environment variables in string values.
type loader struct {
	d *diag
	// lookupEnv reads the environment (os.LookupEnv outside tests).
	lookupEnv func(string) (string, bool)
	// files reads included files (OSFiles outside tests).
	files Files
	// stack holds the absolute paths of the files being read, to detect
	// include cycles.
	stack []string
	// count counts the files read, for the size guard.
	count int
	// size counts the bytes read, main file included.
	size int64
	// max bounds size (MaxConfigBytes outside tests).
	max int64
	// loaded holds the absolute paths of the files already read: a file
	// included twice (not in a cycle) is read once.
	loaded map[string]bool
	// attempts holds what the deferred blocks of the file being parsed
	// added, per KDL version tried (see deferBlock); refs the routeRefs
	// of the deferred routes of the files parsed.
	attempts map[int]*parseAttempt
	refs     map[*kdl.Node]*routeRefs
	// whole, set by tests, keeps every block in the document (nothing
	// deferred), as before deferred blocks.
	whole bool
}

// maxIncludedFiles bounds how many files one configuration may read.
const maxIncludedFiles = 10000

// loadMain parses the main configuration and everything it includes.
func (l *loader) loadMain(filename string, src []byte) []*kdl.Node {
	l.size = int64(len(src))
	if l.size > l.max {
		l.d.errorf(kdl.Position{File: filename, Line: 1, Col: 1}, "the configuration has %d bytes, more than the limit of %s for all its files together", l.size, sizeText(l.max))
		return nil
	}
	return l.load(filename, src, false)
}

// load parses src (read from filename, which may be "" when the config
// did not come from a file) and everything it includes. The parse errors
// of an included file do not quote its text: it may be any file the
// process can read.
func (l *loader) load(filename string, src []byte, included bool) []*kdl.Node {
	l.attempts = nil
	// The strings of the configuration share src, which nothing
	// changes while it is adapted (Adapt's contract).
	opts := kdl.Options{ShareSource: true}
	if !l.whole {
		opts.Defer = l.deferBlock
	}
	doc, err := kdl.ParseWith(filename, src, opts)
	attempts := l.attempts
	l.attempts = nil
	if err != nil {
		var ke *kdl.Error
		switch {
		case errors.As(err, &ke) && included:
			l.d.errorf(ke.Pos, "not valid KDL: %s", ke.PlainMsg())
		case errors.As(err, &ke):
			l.d.errorf(ke.Pos, "%s", ke.Msg)
		default:
			l.d.errorf(kdl.Position{File: filename, Line: 1, Col: 1}, "%v", err)
		}
		return nil
	}
	if at := attempts[doc.Version]; at != nil {
		l.commit(at)
	}
	l.count++
	var out []*kdl.Node
	for _, n := range doc.Nodes {
		l.expandEnv(n)
		if n.Name != "include" {
			out = append(out, n)
			continue
		}
		out = append(out, l.include(filename, n)...)
	}
	return out
}

// include expands one include node.
func (l *loader) include(from string, n *kdl.Node) []*kdl.Node {
	if len(n.Args) != 1 || n.Args[0].Kind != kdl.KindString || len(n.Children) > 0 || len(n.Props()) > 0 {
		l.d.errorf(n.Pos, "include takes exactly one string: a file glob")
		return nil
	}
	if from == "" || from == "-" {
		l.d.errorf(n.Pos, "include %q: includes need the configuration to be read from a file (not from a request body or stdin)", n.Args[0].Str)
		return nil
	}
	pattern := n.Args[0].Str
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(from), pattern)
	}
	matches, err := l.files.Glob(pattern)
	if err != nil {
		l.d.errorf(n.Args[0].Pos, "include %q: bad glob: %v", n.Args[0].Str, err)
		return nil
	}
	sort.Strings(matches)
	if len(matches) == 0 {
		l.d.warnf(n.Pos, "include", "include %q matches no file", n.Args[0].Str)
		return nil
	}
	var out []*kdl.Node
	for _, m := range matches {
		// Examples beside real files are not configuration (as in the
		// original's directory loader): a glob skips them.
		if strings.HasSuffix(m, ".example.kdl") && strings.ContainsAny(n.Args[0].Str, "*?[") {
			continue
		}
		abs, err := filepath.Abs(m)
		if err != nil {
			abs = m
		}
		for _, s := range l.stack {
			if s == abs {
				l.d.errorf(n.Pos, "include %q: circular include of %s (%s)", n.Args[0].Str, m, strings.Join(append(l.stack, abs), " -> "))
				return out
			}
		}
		if l.loaded[abs] {
			continue
		}
		if l.loaded == nil {
			l.loaded = make(map[string]bool)
		}
		l.loaded[abs] = true
		if l.count >= maxIncludedFiles {
			l.d.errorf(n.Pos, "include %q: more than %d files", n.Args[0].Str, maxIncludedFiles)
			return out
		}
		src, err := l.read(m)
		if errors.Is(err, ErrConfigTooLarge) {
			l.d.errorf(n.Pos, "include %q: %s makes the configuration larger than the limit of %s for all its files together", n.Args[0].Str, m, sizeText(l.max))
			return out
		}
		if err != nil {
			l.d.errorf(n.Pos, "include %q: %v", n.Args[0].Str, err)
			continue
		}
		l.stack = append(l.stack, abs)
		out = append(out, l.load(m, src, true)...)
		l.stack = l.stack[:len(l.stack)-1]
	}
	return out
}

// read reads an included file within the bytes the configuration has
// left.
func (l *loader) read(name string) ([]byte, error) {
	left := l.max - l.size
	var src []byte
	var err error
	if bf, ok := l.files.(BoundedFiles); ok {
		src, err = bf.ReadFileMax(name, left)
	} else {
		src, err = l.files.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(src)) > left {
		return nil, fmt.Errorf("%s: %w", name, ErrConfigTooLarge)
	}
	l.size += int64(len(src))
	return src, nil
}

// sizeText renders a byte count for messages ("16 MiB").
func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// expandEnv replaces ${VAR} and ${VAR:-default} in every string argument
// and property of n and its children. "$${" stands for a literal "${".
// A `$` in an unquoted value is an error: `token ${X}` is read by KDL as
// the string "$" followed by a children block, and `token $X` as the
// literal "$X", neither of which is what was meant.
func (l *loader) expandEnv(n *kdl.Node) {
	for i := range n.Args {
		if l.bareDollar(n, &n.Args[i], "", i == len(n.Args)-1) {
			continue
		}
		l.expandValue(&n.Args[i])
	}
	for i := range n.Props() {
		if l.bareDollar(n, &n.Props()[i].Value, n.Props()[i].Name, false) {
			continue
		}
		l.expandValue(&n.Props()[i].Value)
	}
	for _, c := range n.Children {
		l.expandEnv(c)
	}
}

// bareDollar reports (and returns true for) an unquoted value with a `$`,
// showing the quoted form to write instead. prop is the property's name
// ("" for an argument); last is set for the node's last argument, which
// a children block may follow.
func (l *loader) bareDollar(n *kdl.Node, v *kdl.Value, prop string, last bool) bool {
	if v.Kind != kdl.KindString || !v.Bare || !strings.Contains(v.Str, "$") {
		return false
	}
	text, why := v.Str, "is not expanded"
	if last && prop == "" && strings.HasSuffix(text, "$") {
		if inner, ok := refInBlock(n.Children); ok {
			// `${NAME}` unquoted: "$" then a children block { NAME }.
			text += "{" + inner + "}"
			why = "is not expanded (KDL reads {…} as a children block)"
			n.Children = nil
		}
	} else if name, ok := strings.CutPrefix(text, "$"); ok && validEnvName(name) {
		text = "${" + name + "}"
		why = "is the literal text " + strconv.Quote(v.Str) + ", not an environment variable"
	}
	lhs := n.Name
	if prop != "" {
		lhs = prop + "="
	} else {
		lhs += " "
	}
	l.d.errorf(v.Pos, "unquoted %s %s: write %s%s (environment variables are expanded in quoted strings only)", displayRef(v.Str, text), why, lhs, strconv.Quote(text))
	return true
}

// displayRef is what the message shows of an unquoted value: the
// reference as written.
func displayRef(raw, text string) string {
	if strings.HasPrefix(text, raw+"{") {
		return text
	}
	return raw
}

// refInBlock reads the children block that follows an unquoted "$" as
// the inside of a ${…} reference: one node without children, whose name
// and bare arguments are the variable name and default.
func refInBlock(children []*kdl.Node) (string, bool) {
	if len(children) != 1 || children[0].Children != nil || len(children[0].Props()) != 0 {
		return "", false
	}
	parts := []string{children[0].Name}
	for _, a := range children[0].Args {
		if a.Kind != kdl.KindString {
			return "", false
		}
		parts = append(parts, a.Str)
	}
	return strings.Join(parts, " "), true
}

func (l *loader) expandValue(v *kdl.Value) {
	if v.Kind != kdl.KindString || !strings.Contains(v.Str, "${") {
		return
	}
	s, used, err := expand(v.Str, l.lookupEnv)
	if err != nil {
		l.d.errorf(v.Pos, "%v", err)
		return
	}
	// Messages name the variables, never their values.
	for name, val := range used {
		l.d.redact(val, "${"+name+"}")
	}
	if len(used) > 0 && s != v.Str {
		l.d.redact(s, v.Str)
	}
	v.Str = s
}

// expand performs the ${VAR} substitution on s. used maps the variables
// whose value came from the environment (not from a default) to that
// value.
func expand(s string, lookup func(string) (string, bool)) (out string, used map[string]string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", nil, fmt.Errorf("invalid environment variable name %q in %q", name, s)
		}
		val, ok := lookup(name)
		switch {
		case ok && (val != "" || !hasDef):
			b.WriteString(val)
			if used == nil {
				used = make(map[string]string)
			}
			used[name] = val
		case hasDef:
			b.WriteString(def)
		default:
			return "", nil, fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
		}
		i += end + 1
	}
	return b.String(), used, nil
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
