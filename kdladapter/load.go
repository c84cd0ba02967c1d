package kdladapter

import (
	"fmt"
	"path/filepath"
	"sort"
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
	// loaded holds the absolute paths of the files already read: a file
	// included twice (not in a cycle) is read once.
	loaded map[string]bool
}

// maxIncludedFiles bounds how many files one configuration may read.
const maxIncludedFiles = 10000

// load parses src (read from filename, which may be "" when the config
// did not come from a file) and everything it includes.
func (l *loader) load(filename string, src []byte) []*kdl.Node {
	doc, err := kdl.Parse(filename, src)
	if err != nil {
		if ke, ok := err.(*kdl.Error); ok {
			l.d.errorf(ke.Pos, "%s", ke.Msg)
		} else {
			l.d.errorf(kdl.Position{File: filename, Line: 1, Col: 1}, "%v", err)
		}
		return nil
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
	if len(n.Args) != 1 || n.Args[0].Kind != kdl.KindString || len(n.Children) > 0 || len(n.Props) > 0 {
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
		src, err := l.files.ReadFile(m)
		if err != nil {
			l.d.errorf(n.Pos, "include %q: %v", n.Args[0].Str, err)
			continue
		}
		l.stack = append(l.stack, abs)
		out = append(out, l.load(m, src)...)
		l.stack = l.stack[:len(l.stack)-1]
	}
	return out
}

// expandEnv replaces ${VAR} and ${VAR:-default} in every string argument
// and property of n and its children. "$${" stands for a literal "${".
func (l *loader) expandEnv(n *kdl.Node) {
	for i := range n.Args {
		l.expandValue(&n.Args[i])
	}
	for i := range n.Props {
		l.expandValue(&n.Props[i].Value)
	}
	for _, c := range n.Children {
		l.expandEnv(c)
	}
}

func (l *loader) expandValue(v *kdl.Value) {
	if v.Kind != kdl.KindString || !strings.Contains(v.Str, "${") {
		return
	}
	s, err := expand(v.Str, l.lookupEnv)
	if err != nil {
		l.d.errorf(v.Pos, "%v", err)
		return
	}
	v.Str = s
}

// expand performs the ${VAR} substitution on s.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
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
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment variable name %q in %q", name, s)
		}
		val, ok := lookup(name)
		switch {
		case ok && (val != "" || !hasDef):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
		}
		i += end + 1
	}
	return b.String(), nil
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
