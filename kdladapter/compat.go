package kdladapter

import (
	"fmt"
	"sort"
	"strings"
)

// CompatibilityMarkdown renders the compatibility table of
// docs/compatibility.md from the schema: every block and key of the
// original's configuration with what this adapter does with it.
func CompatibilityMarkdown() string {
	var b strings.Builder
	b.WriteString(`# Compatibility with the original Sentinel's sentinel.kdl

Generated from the adapter's schema (` + "`kdladapter/schema.go`" + `) by
` + "`go test ./kdladapter -run TestCompatibilityDoc -update`" + `; a test keeps it
in step with the code and with the schema reference.

Status:
- **honoured** — mapped onto Caddy or a Sentinel module;
- **warning** — accepted, adapting prints a warning that it has no effect;
- **not yet** — belongs to a module not built yet: adapting fails with
  ` + "`not supported yet: <feature>`" + ` at file:line:col.

Any name that is not in these tables is an error with file:line:col and a
"did you mean" suggestion. Keys marked *extension* are Sentinel-on-Caddy
additions, not in the original.

Rules that hold for every key:
- a key that takes values (no sub-keys in these tables) refuses a children
  block: ` + "`token { … }`" + ` is an error;
- an unquoted value with a ` + "`$`" + ` is an error that shows the quoted form:
  ` + "`${VAR}`" + ` and ` + "`${VAR:-default}`" + ` are expanded in quoted strings only
  (` + "`token ${X}`" + ` is KDL for the string "$" and a children block { X });
- messages show ` + "`${VAR}`" + `, never the value a variable gave;
- ` + "`include`" + ` reads regular files only, at most 16 MiB for the main file
  and all included files together, and its errors do not quote an included
  file's text.

## Blocks and keys

| Key | Status | How |
|---|---|---|
`)
	var walk func(k *Key, path string)
	walk = func(k *Key, path string) {
		for _, c := range k.Children {
			p := joinPath(path, c.Name)
			note := c.Note
			if c.Extension {
				note = "*extension* — " + note
			}
			if c.Ref != "" {
				note += "; its keys are those of `" + c.Ref + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p, c.Status, escapeCell(note))
			if c.Status != NotYet && !c.Open && c.Ref == "" || c.Name == "filter" {
				walk(c, p)
			}
		}
	}
	walk(Schema(), "")

	b.WriteString("\n## Filter types (`filters { filter \"id\" { type \"…\" } }`)\n\n| Type | Key | Status | How |\n|---|---|---|---|\n")
	types := filterTypes()
	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := types[n]
		note := t.Note
		if t.Extension {
			note = "*extension* — " + note
		}
		fmt.Fprintf(&b, "| `%s` | | %s | %s |\n", n, t.Status, escapeCell(note))
		for _, c := range t.Children {
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", n, c.Name, c.Status, escapeCell(c.Note))
		}
	}

	b.WriteString("\n## Load-balancing names (`load-balancing \"…\"`)\n\nBoth the underscore and the hyphen spellings are accepted (the original silently\nturned hyphenated names into round robin); an unknown name is an error.\n\n| Algorithm | Accepted names | Status | Caddy policy |\n|---|---|---|---|\n")
	byAlgo := map[string][]string{}
	for name, algo := range lbNames {
		byAlgo[algo] = append(byAlgo[algo], "`"+name+"`")
	}
	algos := make([]string, 0, len(byAlgo))
	for a := range byAlgo {
		algos = append(algos, a)
	}
	sort.Strings(algos)
	for _, algo := range algos {
		sort.Strings(byAlgo[algo])
		status, policy := "not yet", "—"
		if p, ok := lbCaddy[algo]; ok {
			status, policy = "honoured", "`"+p+"`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", algo, strings.Join(byAlgo[algo], ", "), status, policy)
	}

	b.WriteString("\n## Load-balancing settings (`load-balancing \"…\" { … }`)\n\nThe settings of each algorithm's block, mapped onto the fields of its\nselection policy (the adaptive package's; Caddy's `cookie` for sticky).\nThe other algorithms take no block.\n\n| Algorithm | Key | Status | How |\n|---|---|---|---|\n")
	for _, algo := range algos {
		k := lbPolicyKeys[algo]
		if k == nil {
			continue
		}
		for _, c := range k.Children {
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", algo, c.Name, c.Status, escapeCell(c.Note))
		}
	}

	b.WriteString("\n## Discovery kinds (`discovery \"…\" { … }`)\n\nThe settings of each kind, mapped onto its `sentinel.discovery` module\n(docs/discovery.md). `dns_srv` is accepted for `dns-srv`.\n\n| Kind | Key | Status | How |\n|---|---|---|---|\n")
	for _, name := range discoveryKindNames() {
		k := discoveryKinds[name].key
		fmt.Fprintf(&b, "| `%s` | | %s | `sentinel.discovery.%s`: %s |\n", name, k.Status, discoveryKinds[name].module, escapeCell(k.Note))
		for _, c := range k.Children {
			note := c.Note
			if c.Extension {
				note = "*extension* — " + note
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", name, c.Name, c.Status, escapeCell(note))
		}
	}
	return b.String()
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
