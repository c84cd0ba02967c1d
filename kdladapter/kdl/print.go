package kdl

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CanonicalV2 prints the document as KDL v2 in the canonical form of the
// KDL test suite: no comments or blank lines, one node per line, arguments
// in source order, then properties sorted by name with the rightmost of
// duplicated keys kept, children indented by four spaces, strings quoted
// only when they cannot be bare identifiers, numbers in decimal (floats
// with an upper-case, signed exponent) and keywords as #true, #false,
// #null, #inf, #-inf, #nan. An empty document prints as "\n".
func (d *Document) CanonicalV2() string {
	if d == nil || len(d.Nodes) == 0 {
		return "\n"
	}
	var b strings.Builder
	for _, n := range d.Nodes {
		writeNode(&b, n, 0)
	}
	return b.String()
}

// writeNode prints n and its children at the given depth.
func writeNode(b *strings.Builder, n *Node, depth int) {
	for i := 0; i < depth; i++ {
		b.WriteString("    ")
	}
	if n.HasType() {
		b.WriteByte('(')
		writeIdent(b, n.Type())
		b.WriteByte(')')
	}
	writeIdent(b, n.Name)
	for _, v := range n.Args {
		b.WriteByte(' ')
		writeValue(b, v)
	}
	props := n.Props()
	for _, i := range canonicalProps(props) {
		b.WriteByte(' ')
		writeIdent(b, props[i].Name)
		b.WriteByte('=')
		writeValue(b, props[i].Value)
	}
	if len(n.Children) == 0 {
		b.WriteByte('\n')
		return
	}
	b.WriteString(" {\n")
	for _, c := range n.Children {
		writeNode(b, c, depth+1)
	}
	for i := 0; i < depth; i++ {
		b.WriteString("    ")
	}
	b.WriteString("}\n")
}

// canonicalProps returns the indexes of the properties to print: the
// rightmost of each name, sorted by name.
func canonicalProps(props []Prop) []int {
	if len(props) == 0 {
		return nil
	}
	idx := make([]int, 0, len(props))
	if len(props) <= 16 {
		for i := range props {
			dup := false
			for j := i + 1; j < len(props) && !dup; j++ {
				dup = props[j].Name == props[i].Name
			}
			if !dup {
				idx = append(idx, i)
			}
		}
	} else {
		last := make(map[string]int, len(props))
		for i, p := range props {
			last[p.Name] = i
		}
		for i, p := range props {
			if last[p.Name] == i {
				idx = append(idx, i)
			}
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return props[idx[a]].Name < props[idx[b]].Name })
	return idx
}

// writeValue prints a value with its type annotation.
func writeValue(b *strings.Builder, v Value) {
	if v.HasType || v.Type() != "" {
		b.WriteByte('(')
		writeIdent(b, v.Type())
		b.WriteByte(')')
	}
	switch v.Kind {
	case KindString:
		writeIdent(b, v.Str)
	case KindBool:
		if v.Bool {
			b.WriteString("#true")
		} else {
			b.WriteString("#false")
		}
	case KindNull:
		b.WriteString("#null")
	default:
		b.WriteString(formatNumber(v))
	}
}

// formatNumber returns the canonical text of a number value.
func formatNumber(v Value) string {
	switch {
	case v.Int != nil:
		return v.Int.String()
	case v.NumText() == "inf", v.NumText() == "-inf", v.NumText() == "nan":
		return "#" + v.NumText()
	case v.NumText() != "":
		return canonicalFloat(v.NumText())
	case v.Float() != nil:
		f := v.Float()
		if f.IsInf() {
			if f.Signbit() {
				return "#-inf"
			}
			return "#inf"
		}
		return canonicalFloat(f.Text('g', -1))
	}
	return "0"
}

// writeIdent prints s bare when it is a valid KDL v2 identifier and as a
// quoted string otherwise.
func writeIdent(b *strings.Builder, s string) {
	if isBareIdentifier(s) {
		b.WriteString(s)
		return
	}
	writeQuoted(b, s)
}

// isBareIdentifier reports whether s can be written unquoted in KDL v2: it
// is not empty, has only identifier characters, is not a keyword (true,
// false, null, inf, -inf, nan) and does not start like a number.
func isBareIdentifier(s string) bool {
	if s == "" || looksNumeric([]byte(s[:min(len(s), 3)]), false) || isKeyword(s, false) {
		return false
	}
	for _, r := range s {
		if !isIdentRuneV2(r) {
			return false
		}
	}
	return true
}

// writeQuoted prints s as a KDL v2 quoted string. Quotes, backslashes and
// \b \f \n \r \t are escaped by name; other control characters, newlines
// and code points KDL disallows literally are written as \u{…}.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != 0x7F {
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7F || r == 0x85 || r == 0x2028 || r == 0x2029 || isDisallowed(r) {
				b.WriteString(`\u{`)
				b.WriteString(strconv.FormatInt(int64(r), 16))
				b.WriteByte('}')
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
