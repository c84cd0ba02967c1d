package kdl

import (
	"math/big"
	"strconv"
	"strings"
)

// looksNumeric reports whether a run of identifier characters must be read
// as a number: it starts with a digit, a sign and a digit, or (KDL v2) an
// optional sign, a dot and a digit. Such runs are never identifiers.
func looksNumeric(s []byte, v1 bool) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if i < len(s) && isDigit(s[i]) {
		return true
	}
	if !v1 && i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		return true
	}
	return false
}

// isDigit reports whether b is a decimal digit.
func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// parseNumber converts a number literal into a number Value. It returns a
// non-empty message when text is not a valid KDL number.
func parseNumber(text string) (Value, string) {
	v := Value{Kind: KindNumber}
	s := text
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) >= 2 && s[0] == '0' {
		base, name := 0, ""
		switch s[1] {
		case 'x':
			base, name = 16, "hexadecimal"
		case 'o':
			base, name = 8, "octal"
		case 'b':
			base, name = 2, "binary"
		}
		if base != 0 {
			digits := s[2:]
			if digits == "" {
				return v, "invalid number " + strconv.Quote(text) + ": expected " + name + " digits after " + strconv.Quote(s[:2])
			}
			if digits[0] == '_' {
				return v, "invalid number " + strconv.Quote(text) + ": the first " + name + " digit cannot be '_'"
			}
			for i := 0; i < len(digits); i++ {
				c := digits[i]
				if c != '_' && !isBaseDigit(c, base) {
					return v, "invalid number " + strconv.Quote(text) + ": " + strconv.QuoteRune(rune(c)) + " is not a valid " + name + " digit"
				}
			}
			v.Int = parseBigInt(stripUnderscores(digits), base, neg)
			return v, ""
		}
	}
	// Decimal: integer ('.' integer)? (('e'|'E') sign? integer)?
	i := scanInteger(s, 0)
	if i == 0 {
		if s != "" && s[0] == '.' {
			return v, "invalid number " + strconv.Quote(text) + ": expected a digit before '.'"
		}
		return v, "invalid number " + strconv.Quote(text) + ": expected a digit"
	}
	isFloat := false
	if i < len(s) && s[i] == '.' {
		j := scanInteger(s, i+1)
		if j == i+1 {
			return v, "invalid number " + strconv.Quote(text) + ": expected a digit after '.'"
		}
		i = j
		isFloat = true
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := scanInteger(s, j)
		if k == j {
			return v, "invalid number " + strconv.Quote(text) + ": expected a digit in the exponent"
		}
		i = k
		isFloat = true
	}
	if i < len(s) {
		return v, "invalid number " + strconv.Quote(text) + ": unexpected " + strconv.QuoteRune(rune(s[i])) + " (to use it as a string, quote it)"
	}
	if !isFloat {
		v.Int = parseBigInt(stripUnderscores(s), 10, neg)
		return v, ""
	}
	canon := canonicalFloat(text)
	v.SetDecimal(canon, parseBigFloat(canon))
	return v, ""
}

// scanInteger scans digit (digit | '_')* at s[i] and returns the index
// after it (i when there is no leading digit).
func scanInteger(s string, i int) int {
	if i >= len(s) || !isDigit(s[i]) {
		return i
	}
	for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
		i++
	}
	return i
}

// isBaseDigit reports whether c is a digit in base 2, 8 or 16.
func isBaseDigit(c byte, base int) bool {
	switch base {
	case 2:
		return c == '0' || c == '1'
	case 8:
		return c >= '0' && c <= '7'
	default:
		return isHexDigit(c)
	}
}

// stripUnderscores removes '_' digit separators.
func stripUnderscores(s string) string {
	if strings.IndexByte(s, '_') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "_", "")
}

// parseBigInt converts validated digits into a big.Int.
func parseBigInt(digits string, base int, neg bool) *big.Int {
	if len(digits) <= 15 {
		u, err := strconv.ParseUint(digits, base, 63)
		if err == nil {
			i := int64(u)
			if neg {
				i = -i
			}
			return big.NewInt(i)
		}
	}
	z, _ := new(big.Int).SetString(digits, base)
	if neg {
		z.Neg(z)
	}
	return z
}

// parseBigFloat converts a canonical float text into a big.Float: the
// nearest float64 when the number is in its range, otherwise a wider
// big.Float (infinite or zero when even that cannot hold the exponent).
func parseBigFloat(text string) *big.Float {
	if f, err := strconv.ParseFloat(text, 64); err == nil && (f != 0 || !strings.ContainsAny(text, "123456789")) {
		return new(big.Float).SetFloat64(f)
	}
	if f, _, err := big.ParseFloat(text, 10, 64, big.ToNearestEven); err == nil {
		return f
	}
	neg := strings.HasPrefix(text, "-")
	if strings.Contains(text, "E-") {
		z := new(big.Float)
		if neg {
			z.Neg(z)
		}
		return z
	}
	return new(big.Float).SetInf(neg)
}

// canonicalFloat returns the canonical text of a decimal float literal:
// no '_' separators, no '+' sign on the number, no superfluous leading
// zeros, and the exponent (if any) written as 'E', an explicit sign and
// its digits.
func canonicalFloat(text string) string {
	s := stripUnderscores(text)
	sign := ""
	if s != "" && (s[0] == '+' || s[0] == '-') {
		if s[0] == '-' {
			sign = "-"
		}
		s = s[1:]
	}
	mant, exp, hasExp := s, "", false
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp, hasExp = s[:i], s[i+1:], true
	}
	intPart, frac, hasFrac := mant, "", false
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac, hasFrac = mant[:i], mant[i+1:], true
	}
	intPart = trimLeadingZeros(intPart)
	var b strings.Builder
	b.Grow(len(s) + 3)
	b.WriteString(sign)
	b.WriteString(intPart)
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	} else if !hasExp {
		b.WriteString(".0")
	}
	if hasExp {
		esign := "+"
		if exp != "" && (exp[0] == '+' || exp[0] == '-') {
			if exp[0] == '-' {
				esign = "-"
			}
			exp = exp[1:]
		}
		b.WriteByte('E')
		b.WriteString(esign)
		b.WriteString(trimLeadingZeros(exp))
	}
	return b.String()
}

// trimLeadingZeros drops leading zeros but keeps at least one digit.
func trimLeadingZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	if s == "" {
		return "0"
	}
	return s
}
