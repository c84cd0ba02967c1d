package kdladapter

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// layoutDirs are the folders of the original's directory layout, loaded
// in this order after the main file.
var layoutDirs = []string{"listeners", "routes", "upstreams", "filters", "agents"}

// DirectoryEntry returns an entry file for a configuration directory in
// the original's layout: the main file (sentinel.kdl, else zentinel.kdl),
// the *.kdl files of listeners/, routes/, upstreams/, filters/ and
// agents/, and environments/<env>.kdl when env is set. Files ending in
// .example.kdl are left out. A file the main file includes itself is read
// once.
func DirectoryEntry(dir, env string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Entry generated for the configuration directory %s\n", abs)
	found := false
	for _, main := range []string{"sentinel.kdl", "zentinel.kdl"} {
		if isFile(filepath.Join(abs, main)) {
			fmt.Fprintf(&b, "include %s\n", strconv.Quote(filepath.Join(abs, main)))
			found = true
			break
		}
	}
	for _, sub := range layoutDirs {
		files, _ := filepath.Glob(filepath.Join(abs, sub, "*.kdl"))
		sort.Strings(files)
		for _, f := range files {
			if strings.HasSuffix(f, ".example.kdl") {
				continue
			}
			fmt.Fprintf(&b, "include %s\n", strconv.Quote(f))
			found = true
		}
	}
	if env != "" {
		f := filepath.Join(abs, "environments", env+".kdl")
		if !isFile(f) {
			return nil, fmt.Errorf("environment %q: %s does not exist", env, f)
		}
		fmt.Fprintf(&b, "include %s\n", strconv.Quote(f))
	}
	if !found {
		return nil, fmt.Errorf("%s has no sentinel.kdl and no .kdl file in %s", abs, strings.Join(layoutDirs, "/, ")+"/")
	}
	return []byte(b.String()), nil
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}
