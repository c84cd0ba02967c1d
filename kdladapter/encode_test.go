package kdladapter

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestEncodeMatchesEncodingJSON checks the encoder against encoding/json.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	v := obj{
		"s":   "a\"b\\c\n\r\t\x01<>&\u2028\u2029é\xff",
		"i":   int64(-42),
		"n":   7,
		"f":   0.25,
		"b":   true,
		"nil": nil,
		"o":   obj{"z": []string{"x", "y"}, "a": []int64{1, 2}},
		"l":   []obj{{"k": []int{3}}, {}},
		"h":   map[string][]string{"B": {"1"}, "A": {"2"}},
		"m":   map[string]string{"y": "z"},
		"any": []any{"x", int64(1), obj{}},
		"raw": json.RawMessage(`{"r":1}`),
		"rs":  []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"2"`)},
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := encode(nil, v); !bytes.Equal(got, want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestEncodePanicsOnUnknownType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("expected a panic")
		}
	}()
	encode(nil, struct{}{})
}
