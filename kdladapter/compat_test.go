package kdladapter

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files and docs/compatibility.md")

const compatDoc = "../docs/compatibility.md"

func TestCompatibilityDoc(t *testing.T) {
	want := CompatibilityMarkdown()
	if *update {
		if err := os.WriteFile(compatDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(compatDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date: run go test ./kdladapter -run TestCompatibilityDoc -update", compatDoc)
	}
}

// sectionBlocks maps the sections of the schema reference to the block
// path their tables describe.
var sectionBlocks = map[string]string{
	"3":   "system",
	"4":   "listeners.listener",
	"4.1": "listeners.listener.tls",
	"4.3": "listeners.listener.tls.acme",
	"5":   "routes.route",
	"5.1": "routes.route.matches",
	"13":  "observability",
	"5.3": "routes.route.policies",
	"6":   "upstreams.upstream",
	"6.1": "upstreams.upstream.health-check",
	"12":  "limits",
}

// lookup finds the key at a dotted path.
func lookup(path string) *Key {
	k := Schema()
	for _, p := range strings.Split(path, ".") {
		if k = k.child(p); k == nil {
			return nil
		}
	}
	return k
}

// TestSchemaReferenceCovered walks the schema reference of the original
// (shared/reference/sentinel-config-schema.md): every key of its tables,
// every top-level node, filter type and load-balancing name must be known
// to the adapter, so that none is dropped silently.
func TestSchemaReferenceCovered(t *testing.T) {
	src, err := os.ReadFile(testutil.Shared(t, "reference/sentinel-config-schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := ""
	heading := regexp.MustCompile(`^#{2,3} (\d+(?:\.\d+)?)\.? `)
	firstCell := regexp.MustCompile("^\\| `([a-z0-9-]+)")
	checked := 0
	for _, line := range strings.Split(string(src), "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			section = m[1]
			continue
		}
		if section == "16.1" && regexp.MustCompile(`^\| \d+ \|`).MatchString(line) {
			// | # | Algorithm | names… |: the names are in the third cell.
			cells := strings.Split(line, "|")
			for _, n := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[3], -1) {
				if _, ok := lbNames[n[1]]; !ok {
					t.Errorf("load-balancing name %q of the reference is not accepted", n[1])
				}
				checked++
			}
			continue
		}
		m := firstCell.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		switch section {
		case "2":
			if lookup(name) == nil {
				t.Errorf("top-level node %q of the reference is unknown to the adapter", name)
			}
			checked++
		case "7":
			if name == "type" { // the table's header
				continue
			}
			if _, ok := filterTypes()[name]; !ok {
				t.Errorf("filter type %q of the reference is unknown to the adapter", name)
			}
			checked++
		default:
			block, ok := sectionBlocks[section]
			if !ok {
				continue
			}
			parent := lookup(block)
			if parent == nil {
				t.Fatalf("block %s missing from the schema", block)
			}
			if parent.Status == NotYet {
				continue
			}
			// Rows may name several keys: `cert-file`, `key-file`.
			for _, k := range regexp.MustCompile("`([a-z0-9-]+)").FindAllStringSubmatch(strings.Split(line, "|")[1], -1) {
				key := k[1]
				if strings.HasPrefix(key, "-") { // `max-requests-per-second-global` / `-per-client`
					key = "max-requests-per-second" + key
				}
				if parent.child(key) == nil {
					t.Errorf("§%s: key %q of %s is unknown to the adapter", section, key, block)
				}
				checked++
			}
		}
	}
	t.Logf("%d names of the reference checked", checked)
	if checked < 150 {
		t.Fatalf("only %d keys checked: did the reference's format change?", checked)
	}
}
