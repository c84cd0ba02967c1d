package sdkconfig

import (
	"strings"
	"testing"
)

type cfg struct {
	Allow   []string          `json:"allow"`
	Headers map[string]string `json:"headers"`
	Status  int               `json:"status"`
	Nested  struct {
		Paths []string `json:"paths"`
	} `json:"nested"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // "" = no error
	}{
		{"empty", ``, ""},
		{"null", ` null `, ""},
		{"list", `{"allow":["/a","/b"],"status":403}`, ""},
		{"one-element list", `{"allow":["/a"]}`, ""},
		{"single string for a list", `{"allow":"/a"}`, `config key "allow": a list is expected, got a single string; in KDL a one-element list is written with (list): allow (list)"…"`},
		{"single number for a nested list", `{"nested":{"paths":3}}`, `config key "nested.paths": a list is expected, got a single number; in KDL a one-element list is written with (list): paths (list)"…"`},
		{"wrong scalar", `{"status":"x"}`, `config key "status": got a string, want an integer`},
		{"list for a block", `{"headers":["a"]}`, `config key "headers": got a list, want a block (object)`},
		{"unknown key", `{"alow":["/a"]}`, `config: json: unknown field "alow"`},
		{"syntax", `{"allow":`, `config: unexpected EOF`},
		{"bad json", `{"allow" 1}`, `config: not valid JSON at byte`},
		{"trailing", `{} {}`, `config: trailing data`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c cfg
			err := Decode([]byte(tc.in), &c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	var c cfg
	if err := Decode([]byte(`{"allow":["/a"]}`), &c); err != nil || len(c.Allow) != 1 || c.Allow[0] != "/a" {
		t.Fatalf("%v %v", err, c)
	}
}

func TestKindNames(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{new(bool), "want a boolean"}, {new(float64), "want a number"}, {new(string), "want a string"},
	} {
		if err := Decode([]byte(`[1]`), tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T: %v, want %q", tc.in, err, tc.want)
		}
	}
	if got := lastKey("a.b.c"); got != "c" {
		t.Errorf("lastKey %q", got)
	}
	if kindName(nil) != "another type" {
		t.Error("kindName(nil)")
	}
}
