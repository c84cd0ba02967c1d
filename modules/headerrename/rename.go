package headerrename

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// renaming moves the fields named from (in any letter case) to to.
type renaming struct {
	// from and to are canonical field names.
	from, to string
}

// compile returns the renamings of m in canonical form, sorted by their
// old names.
func compile(m map[string]string) []renaming {
	out := make([]renaming, 0, len(m))
	for from, to := range m {
		out = append(out, renaming{from: http.CanonicalHeaderKey(from), to: http.CanonicalHeaderKey(to)})
	}
	slices.SortFunc(out, func(a, b renaming) int { return strings.Compare(a.from, b.from) })
	return out
}

// reservedFields lists the fields that may not be renamed, nor be renamed
// to: changing them would change how messages are routed or framed.
const reservedFields = "Connection, Content-Length, Host, Transfer-Encoding"

// isReserved reports whether the canonical field name is reserved.
func isReserved(canonical string) bool {
	switch canonical {
	case "Connection", "Content-Length", "Host", "Transfer-Encoding":
		return true
	}
	return false
}

// validate checks the renamings of one side (request or response).
func validate(side string, m map[string]string) error {
	seen := make(map[string]string, len(m))
	for _, from := range sortedKeys(m) {
		to := m[from]
		for _, name := range []string{from, to} {
			if !validFieldName(name) {
				return fmt.Errorf("%s: invalid header field name %q", side, name)
			}
			if isReserved(http.CanonicalHeaderKey(name)) {
				return fmt.Errorf("%s: header field %q cannot be renamed (reserved: %s)",
					side, name, reservedFields)
			}
		}
		canonical := http.CanonicalHeaderKey(from)
		if canonical == http.CanonicalHeaderKey(to) {
			return fmt.Errorf("%s: header field %q is renamed to itself", side, from)
		}
		if other, dup := seen[canonical]; dup {
			return fmt.Errorf("%s: header field %q is renamed twice (also as %q)", side, from, other)
		}
		seen[canonical] = from
	}
	return nil
}

// renameAll applies the renamings to hdr at once: every new field gets
// the values its old field had before any renaming (so swaps work), and
// replaces whatever values it had. Old fields that are absent are skipped;
// new fields of several old fields get all their values, in the order of
// the renamings. Fields are matched case-insensitively, because handlers
// may store non-canonical keys.
func renameAll(hdr http.Header, renamings []renaming) {
	moved := make([][]string, len(renamings))
	present := make([]bool, len(renamings))
	for i, rn := range renamings {
		for _, k := range matchingKeys(hdr, rn.from) {
			present[i] = true
			moved[i] = append(moved[i], hdr[k]...)
		}
	}
	for i, rn := range renamings {
		if present[i] {
			for _, k := range matchingKeys(hdr, rn.from) {
				delete(hdr, k)
			}
		}
	}
	written := make(map[string]bool, len(renamings))
	for i, rn := range renamings {
		if !present[i] {
			continue
		}
		if !written[rn.to] {
			for _, k := range matchingKeys(hdr, rn.to) {
				delete(hdr, k)
			}
			written[rn.to] = true
			hdr[rn.to] = []string{}
		}
		hdr[rn.to] = append(hdr[rn.to], moved[i]...)
	}
}

// matchingKeys returns the sorted keys of hdr whose canonical form is
// canonical.
func matchingKeys(hdr http.Header, canonical string) []string {
	var keys []string
	for k := range hdr {
		if k == canonical || http.CanonicalHeaderKey(k) == canonical {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// sortedKeys returns the keys of m in lexicographic order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validFieldName reports whether name is a valid header field name (an
// RFC 9110 token).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
