package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// finding is one error or warning about a configuration, with its
// position when it has one.
type finding struct {
	// File is the file the finding is about ("" when unknown).
	File string `json:"file,omitempty"`
	// Line is the 1-based line (0 when unknown).
	Line int `json:"line,omitempty"`
	// Column is the 1-based column in characters (0 when unknown).
	Column int `json:"column,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// positioned matches "file:line:col: message", the form of every finding
// of a *kdladapter.ConfigError.
var positioned = regexp.MustCompile(`^(.+?):(\d+):(\d+): (.*)$`)

// findingsOf splits an adaptation error into its findings. A
// *kdladapter.ConfigError lists one finding per line, each starting with
// its position (a line without one continues the previous message); any
// other error is one finding without a position.
func findingsOf(err error) []finding {
	var ce *kdladapter.ConfigError
	if !errors.As(err, &ce) {
		return []finding{{Message: err.Error()}}
	}
	var out []finding
	for _, line := range strings.Split(ce.Error(), "\n") {
		if m := positioned.FindStringSubmatch(line); m != nil {
			l, _ := strconv.Atoi(m[2])
			c, _ := strconv.Atoi(m[3])
			out = append(out, finding{File: m[1], Line: l, Column: c, Message: m[4]})
			continue
		}
		if len(out) == 0 {
			// The "N errors in the configuration:" heading.
			continue
		}
		out[len(out)-1].Message += "\n" + line
	}
	if len(out) == 0 {
		return []finding{{Message: err.Error()}}
	}
	return out
}

// warningsOf converts the adapter's warnings (which have no column).
func warningsOf(ws []caddyconfig.Warning) []finding {
	out := make([]finding, 0, len(ws))
	for _, w := range ws {
		msg := w.Message
		if w.Directive != "" {
			msg = w.Directive + ": " + msg
		}
		out = append(out, finding{File: w.File, Line: w.Line, Message: msg})
	}
	return out
}

// sources reads the lines of the files findings point to, once each.
type sources struct {
	lines map[string][]string
	// stdin is the configuration read from standard input ("-").
	stdin []byte
}

// line returns line n (1-based) of file, or false.
func (s *sources) line(file string, n int) (string, bool) {
	if file == "" || n < 1 {
		return "", false
	}
	if s.lines == nil {
		s.lines = map[string][]string{}
	}
	lines, ok := s.lines[file]
	if !ok {
		var data []byte
		var err error
		if file == "-" {
			data = s.stdin
		} else {
			data, err = os.ReadFile(file)
		}
		if err == nil {
			lines = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
		}
		s.lines[file] = lines
	}
	if n > len(lines) {
		return "", false
	}
	return lines[n-1], true
}

// printFindings writes findings for people: "file:line:col: message"
// (severity after the position for warnings), then the source line and a
// caret under the column.
func printFindings(w io.Writer, src *sources, severity string, fs []finding) {
	for _, f := range fs {
		var pos string
		switch {
		case f.File != "" && f.Line > 0 && f.Column > 0:
			pos = fmt.Sprintf("%s:%d:%d: ", f.File, f.Line, f.Column)
		case f.File != "" && f.Line > 0:
			pos = fmt.Sprintf("%s:%d: ", f.File, f.Line)
		case f.File != "":
			pos = f.File + ": "
		}
		fmt.Fprintf(w, "%s%s%s\n", pos, severity, f.Message)
		text, ok := src.line(f.File, f.Line)
		if !ok {
			continue
		}
		gutter := strconv.Itoa(f.Line)
		fmt.Fprintf(w, " %s | %s\n", gutter, text)
		if f.Column > 0 {
			fmt.Fprintf(w, " %s | %s^\n", strings.Repeat(" ", len(gutter)), caretPad(text, f.Column))
		}
	}
}

// caretPad returns the blanks that put a caret under column col (1-based,
// in characters) of line: tabs are kept so that the caret lines up.
func caretPad(line string, col int) string {
	var b strings.Builder
	i := 1
	for _, r := range line {
		if i >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		i++
	}
	for ; i < col; i++ {
		b.WriteByte(' ')
	}
	return b.String()
}

// report is the --json form of a check's outcome.
type report struct {
	// Config names what was checked: a path, or "embedded default config".
	Config string `json:"config"`
	// Valid is true when there is no error.
	Valid bool `json:"valid"`
	// Errors are the errors, in source order.
	Errors []finding `json:"errors"`
	// Warnings are settings accepted without effect, and the like.
	Warnings []finding `json:"warnings"`
}

// writeJSON writes r as one JSON document and a newline.
func writeJSON(w io.Writer, r report) {
	if r.Errors == nil {
		r.Errors = []finding{}
	}
	if r.Warnings == nil {
		r.Warnings = []finding{}
	}
	b, _ := json.Marshal(r)
	fmt.Fprintln(w, string(b))
}
