package kdl

import (
	"math"
	"math/big"
	"strings"
	"testing"
)

// firstArgs parses a one-node v2 document and returns its arguments.
func firstArgs(t *testing.T, src string) []Value {
	t.Helper()
	return mustParseV2(t, src).Nodes[0].Args
}

func TestValueAccessors(t *testing.T) {
	args := firstArgs(t, `n 42 -0x10 12345678901234567890 2.5 1e3 1.5e400 #inf #-inf #nan "s" #true #false #null`)
	type want struct {
		i       int64
		iok     bool
		f       float64
		fok     bool
		iface   any
		str     string
		kindStr string
	}
	wants := []want{
		{42, true, 42, true, int64(42), "42", "number"},
		{-16, true, -16, true, int64(-16), "-16", "number"},
		{0, false, 12345678901234567890, true, float64(12345678901234567890), "12345678901234567890", "number"},
		{0, false, 2.5, true, 2.5, "2.5", "number"},
		{1000, true, 1000, true, float64(1000), "1E+3", "number"},
		{0, false, math.Inf(1), true, math.Inf(1), "1.5E+400", "number"},
		{0, false, math.Inf(1), true, math.Inf(1), "inf", "number"},
		{0, false, math.Inf(-1), true, math.Inf(-1), "-inf", "number"},
		{0, false, math.NaN(), true, math.NaN(), "nan", "number"},
		{0, false, 0, false, "s", `"s"`, "string"},
		{0, false, 0, false, true, "#true", "boolean"},
		{0, false, 0, false, false, "#false", "boolean"},
		{0, false, 0, false, nil, "#null", "null"},
	}
	for k, w := range wants {
		v := args[k]
		if i, ok := v.AsInt64(); i != w.i || ok != w.iok {
			t.Errorf("arg %d AsInt64 = %d, %v; want %d, %v", k, i, ok, w.i, w.iok)
		}
		f, ok := v.AsFloat64()
		if ok != w.fok || (ok && !(f == w.f || (math.IsNaN(f) && math.IsNaN(w.f)))) {
			t.Errorf("arg %d AsFloat64 = %v, %v; want %v, %v", k, f, ok, w.f, w.fok)
		}
		got := v.Interface()
		switch wi := w.iface.(type) {
		case float64:
			gf, isF := got.(float64)
			if !isF || !(gf == wi || (math.IsNaN(gf) && math.IsNaN(wi))) {
				t.Errorf("arg %d Interface = %#v, want %#v", k, got, w.iface)
			}
		default:
			if got != w.iface {
				t.Errorf("arg %d Interface = %#v, want %#v", k, got, w.iface)
			}
		}
		if s := v.String(); s != w.str {
			t.Errorf("arg %d String = %q, want %q", k, s, w.str)
		}
		if ks := v.Kind.String(); ks != w.kindStr {
			t.Errorf("arg %d Kind = %q, want %q", k, ks, w.kindStr)
		}
	}
}

func TestTinyFloat(t *testing.T) {
	v := firstArgs(t, "n 1.23E-1000 0.0e5")
	if v[0].Float() == nil || v[0].Float().Sign() <= 0 || v[0].Float().MantExp(nil) > -3000 {
		t.Errorf("1.23E-1000 Float = %v, want a tiny positive big.Float", v[0].Float())
	}
	if f, ok := v[0].AsFloat64(); !ok || f != 0 {
		t.Errorf("AsFloat64 = %v, %v", f, ok)
	}
	if v[1].Float() == nil || v[1].Float().Sign() != 0 {
		t.Errorf("0.0e5 Float = %v", v[1].Float())
	}
	v = firstArgs(t, "n 1e-99999999999999999999 -1e99999999999999999999")
	if v[0].Float() == nil || v[0].Float().Sign() != 0 {
		t.Errorf("underflow Float = %v, want 0", v[0].Float())
	}
	if v[1].Float() == nil || !v[1].Float().IsInf() || v[1].Float().Sign() > 0 {
		t.Errorf("overflow Float = %v, want -Inf", v[1].Float())
	}
}

func TestCanonicalConstructed(t *testing.T) {
	built := &Node{
		Name: "built",
		Args: []Value{
			decimal(big.NewFloat(2)),
			decimal(big.NewFloat(0.5)),
			decimal(new(big.Float).SetInf(false)),
			decimal(new(big.Float).SetInf(true)),
			{Kind: KindNumber},
			typed(Value{Kind: KindString, Str: "tab\there"}, "t"),
			{Kind: KindString, Str: "bad\xffutf8"},
			{Kind: KindString, Str: "\b\f\r\\"},
		},
		Children: []*Node{typedNode(&Node{Name: "c"}, "")},
	}
	built.SetProps([]Prop{{Name: "needs quote", Value: Value{Kind: KindBool}}})
	doc := &Document{Nodes: []*Node{built}}
	want := "built 2.0 0.5 #inf #-inf 0 (t)\"tab\\there\" \"bad\uFFFDutf8\" \"\\b\\f\\r\\\\\" \"needs quote\"=#false {\n    (\"\")c\n}\n"
	if got := doc.CanonicalV2(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	var nilDoc *Document
	if got := nilDoc.CanonicalV2(); got != "\n" {
		t.Errorf("nil document prints %q", got)
	}
	if got := (Value{}).String(); got != `""` {
		t.Errorf("zero Value String = %q", got)
	}
	if got := (Value{Kind: KindNumber}).String(); got != "?" {
		t.Errorf("empty number String = %q", got)
	}
	if got := (decimal(big.NewFloat(1.5))).String(); got != "1.5" {
		t.Errorf("Float String = %q", got)
	}
	if _, ok := (Value{Kind: KindString}).AsFloat64(); ok {
		t.Error("string AsFloat64 ok")
	}
	if _, ok := (decimal(big.NewFloat(1e30))).AsInt64(); ok {
		t.Error("1e30 AsInt64 ok")
	}
}

func TestIsBareIdentifier(t *testing.T) {
	for s, want := range map[string]bool{
		"node": true, "-": true, "--": true, "+.": true, ".": true, "a.b": true, "é": true,
		"": false, "1a": false, "-1": false, ".5": false, "+.5": false, "true": false, "inf": false,
		"a b": false, "a\"b": false, "a#b": false, "a\u200eb": false, "a\u3000b": false, "a\u2028": false,
	} {
		if got := isBareIdentifier(s); got != want {
			t.Errorf("isBareIdentifier(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestErrorDescriptions(t *testing.T) {
	for r, want := range map[rune]string{
		'x': "'x'", '\n': "newline", 0x2028: "newline", 0x1: "character U+0001", 0x3000: "character U+3000",
		0xFFFD: "invalid UTF-8", 0x200E: "character U+200E",
	} {
		if got := describeRune(r); got != want {
			t.Errorf("describeRune(%U) = %q, want %q", r, got, want)
		}
	}
	if got := describeIndent("\t \u3000"); got != "tab, space, U+3000" {
		t.Errorf("describeIndent = %q", got)
	}
	if got := describeIndent(""); !strings.Contains(got, "no indentation") {
		t.Errorf("describeIndent(\"\") = %q", got)
	}
}

func TestIdentMasks(t *testing.T) {
	for c := rune(0); c < 128; c++ {
		inV2 := (c < 64 && identV2Lo>>c&1 == 1) || (c >= 64 && identV2Hi>>(c-64)&1 == 1)
		inV1 := (c < 64 && identV1Lo>>c&1 == 1) || (c >= 64 && identV1Hi>>(c-64)&1 == 1)
		if inV2 != isIdentRuneV2(c) || inV1 != isIdentRuneV1(c) {
			t.Errorf("mask mismatch for %q: v2 %v/%v, v1 %v/%v", c, inV2, isIdentRuneV2(c), inV1, isIdentRuneV1(c))
		}
	}
}

// decimal is a decimal value with no text, as a program would build it.
func decimal(f *big.Float) Value {
	var v Value
	v.SetDecimal("", f)
	return v
}

// typed returns v with the type annotation t.
func typed(v Value, t string) Value {
	v.SetType(t)
	return v
}

// typedNode returns n with the type annotation t.
func typedNode(n *Node, t string) *Node {
	n.SetType(t)
	return n
}
