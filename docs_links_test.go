package sentinel

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mdLink finds Markdown links and images: [text](target) and ![alt](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// outsideRef finds references in prose or code spans to the team's
// shared folder, which a clone of the repository does not have.
var outsideRef = regexp.MustCompile(`(\.\./)+shared/|\bshared/(reference|docs|testdata)/`)

// TestDocsLinksResolve: every relative link of README.md and docs/*.md
// names a file or folder that exists inside the repository (not beside
// it), and no page sends the reader to the shared folder.
func TestDocsLinksResolve(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob("docs/*.md")
	pages = append(pages, "README.md")
	checked := 0
	for _, page := range pages {
		src, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if m := outsideRef.FindString(line); m != "" {
				t.Errorf("%s:%d: refers to %q, outside the repository", page, i+1, m)
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
					continue
				}
				checked++
				target, _, _ = strings.Cut(target, "#")
				path := filepath.Join(filepath.Dir(page), filepath.FromSlash(target))
				abs, err := filepath.Abs(path)
				if err != nil {
					t.Errorf("%s:%d: %s: %v", page, i+1, m[1], err)
					continue
				}
				if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					t.Errorf("%s:%d: link %s leaves the repository", page, i+1, m[1])
					continue
				}
				if _, err := os.Stat(abs); err != nil {
					t.Errorf("%s:%d: link %s: no such file in the repository", page, i+1, m[1])
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d relative links found: is the pattern right?", checked)
	}
}
