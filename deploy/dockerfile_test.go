package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// dockerInstruction is one instruction of a Dockerfile (continuation
// lines joined, comments dropped).
type dockerInstruction struct {
	cmd  string
	args string
}

func parseDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstruction
	var cur strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		l := strings.TrimSpace(line)
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// TestDockerfile checks what can be checked without a Docker engine: a
// multi-stage build of ./cmd/sentinel with CGO_ENABLED=0 (the build
// TestStaticBinary runs), a distroless or scratch base, a numeric non-root
// user matching the chart, the entrypoint the chart runs, the ports the
// chart uses, and a Go image not older than go.mod's go line.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	var froms []string
	var finalUser, entrypoint, goVersion string
	var buildRun string
	exposed := map[string]bool{}
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			if v, ok := strings.CutPrefix(in.args, "GO_VERSION="); ok {
				goVersion = v
			}
		case "FROM":
			froms = append(froms, in.args)
			finalUser = ""
			exposed = map[string]bool{}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				buildRun = in.args
			}
		case "USER":
			finalUser = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed[p] = true
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("not a multi-stage build: %v", froms)
	}
	final := strings.Fields(froms[len(froms)-1])[0]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage FROM %s: want distroless/static or scratch", final)
	}
	if !strings.Contains(buildRun, "CGO_ENABLED=0") || !strings.Contains(buildRun, "./cmd/sentinel") || !strings.Contains(buildRun, "-o /out/sentinel") {
		t.Errorf("build step %q: want CGO_ENABLED=0 go build -o /out/sentinel ./cmd/sentinel", buildRun)
	}

	// The user is the chart's runAsUser.
	vals := loadChart(t).Values
	uid := vals["podSecurityContext"].(map[string]any)["runAsUser"]
	if u, _, _ := strings.Cut(finalUser, ":"); u == "" || u == "0" || u == "root" || u != jsonNumber(uid) {
		t.Errorf("USER %q, the chart runs as %v", finalUser, uid)
	}

	// The chart's command is the image's entrypoint.
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
		t.Fatalf("ENTRYPOINT %q: want the exec form", entrypoint)
	}
	r := mustRender(t, loadChart(t), map[string]any{})
	if cmd := pod(t, r).container.Command; len(cmd) == 0 || cmd[0] != ep[0] {
		t.Errorf("chart command %v, image entrypoint %v", cmd, ep)
	}
	for _, p := range pod(t, r).container.Ports {
		if !exposed[jsonNumber(p.ContainerPort)] {
			t.Errorf("port %d not exposed by the image", p.ContainerPort)
		}
	}

	// The Go image is at least go.mod's go version.
	mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(mod)
	if m == nil || goVersion == "" {
		t.Fatalf("go.mod go line %q, Dockerfile GO_VERSION %q", m, goVersion)
	}
	if compareVersions(goVersion, string(m[1])) < 0 {
		t.Errorf("Dockerfile GO_VERSION %s is older than go.mod's go %s", goVersion, m[1])
	}
}

// compareVersions compares dotted numeric versions (1.26.8 vs 1.26.0).
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDockerignoreKeepsSources: no file that `go build ./cmd/sentinel`
// needs (Go files, embedded files, go.mod, go.sum) is excluded from the
// build context by .dockerignore.
func TestDockerignoreKeepsSources(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(src), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") || strings.Contains(l, "**") {
			t.Fatalf(".dockerignore pattern %q: the test only knows simple patterns", l)
		}
		patterns = append(patterns, strings.TrimPrefix(path.Clean(l), "/"))
	}
	excluded := func(rel string) string {
		// A pattern excludes a path when it matches the path or one of its
		// parent directories.
		for p := rel; p != "." && p != "/"; p = path.Dir(p) {
			for _, pat := range patterns {
				if ok, _ := path.Match(pat, p); ok {
					return pat
				}
			}
		}
		return ""
	}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/sentinel")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	need := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			Dir        string
			GoFiles    []string
			EmbedFiles []string
			Module     *struct{ Path string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/sentinel-proxy/sentinel" {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			need = append(need, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(need) < 5 {
		t.Fatalf("go list found only %v", need)
	}
	for _, f := range need {
		if pat := excluded(f); pat != "" {
			t.Errorf("%s is needed by the build but .dockerignore excludes it (%s)", f, pat)
		}
	}
	for _, f := range []string{"charts/sentinel/values.yaml", ".git/HEAD", "deploy/chart_test.go"} {
		if excluded(f) == "" {
			t.Errorf("%s is sent to the Docker build context", f)
		}
	}
}

// TestMakefileTargets: the documented make targets exist and `make -n`
// parses them (when make is installed).
func TestMakefileTargets(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"build", "test", "image", "chart", "docs"} {
		if !regexp.MustCompile(`(?m)^` + target + `:`).Match(src) {
			t.Errorf("Makefile has no %s target", target)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		testutil.Missing(t, "make is not installed")
	}
	cmd := exec.Command("make", "-n", "image", "chart")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	version, _ := os.ReadFile(filepath.Join(root, "VERSION"))
	v := strings.TrimSpace(string(version))
	for _, want := range []string{
		"docker build", ":" + v + " .",
		"helm.sh/helm/v3/cmd/helm@v3.22.0 lint --strict",
		"package charts/sentinel --version " + v + " --app-version " + v,
		"repo index dist",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make -n image chart does not run %q:\n%s", want, out)
		}
	}
}
