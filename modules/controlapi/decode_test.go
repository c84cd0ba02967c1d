package controlapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/registry"
)

func TestValidateAddress(t *testing.T) {
	good := []string{"10.0.0.1:80", "localhost:1", "svc.internal:65535", "svc.internal.:8080", "a_b.example:443", "[::1]:8080", "[fe80::1%eth0]:80", "[2001:db8::1]:443", "x-1.y:9"}
	bad := []string{"", ":80", "host", "host:", "host:0", "host:65536", "host:+80", "host:8o", "::1:80", "[::1]", "[10.0.0.1]:80", "[host]:80", "0.0.0.0:80", "[::]:80", "224.0.0.1:80", "a b:80", "-a.example:80", "a..b:80", "1.2.3.999:80", "host:123456", "[fe80::1%e/0]:80", "[]:80", "ex\x00ample:80", ".a:80"}
	for _, a := range good {
		if err := validateAddress(a, "address"); err != nil {
			t.Errorf("%q: %v", a, err)
		}
		if err := registry.ValidateTarget(registry.Target{Address: a, Weight: 1}); err != nil {
			t.Errorf("%q accepted here but not by the registry: %v", a, err)
		}
	}
	for _, a := range bad {
		if err := validateAddress(a, "address"); err == nil {
			t.Errorf("%q accepted", a)
		} else if ae := toAPIError(err); ae.field != "address" || ae.status != 400 {
			t.Errorf("%q: %+v", a, ae)
		}
	}
	if validateAddress(string(make([]byte, 254))+":80", "a") == nil || validateAddress(fmt.Sprintf("%064d.x:80", 0), "a") == nil {
		t.Error("too long accepted")
	}
}

func TestParseIfMatch(t *testing.T) {
	tests := []struct {
		in   []string
		want precondition
		err  bool
	}{
		{nil, precondition{}, false},
		{[]string{"*"}, precondition{present: true, any: true}, false},
		{[]string{`"3"`}, precondition{present: true, versions: []uint64{3}}, false},
		{[]string{`"3", W/"4" ,"x","5"`}, precondition{present: true, versions: []uint64{3, 5}}, false},
		{[]string{`"1"`, `"2"`}, precondition{present: true, versions: []uint64{1, 2}}, false},
		{[]string{`"18446744073709551616"`}, precondition{present: true}, false},
		{[]string{`"+3"`}, precondition{present: true}, false},
		{[]string{`"3",`}, precondition{present: true, versions: []uint64{3}}, false},
		{[]string{``}, precondition{}, true},
		{[]string{`3`}, precondition{}, true},
		{[]string{`W/3`}, precondition{}, true},
		{[]string{`"3`}, precondition{}, true},
		{[]string{`"3" x`}, precondition{}, true},
		{[]string{`W/`}, precondition{}, true},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.in {
			h.Add("If-Match", v)
		}
		got, err := parseIfMatch(h)
		if (err != nil) != tt.err || !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %+v %v, want %+v", tt.in, got, err, tt.want)
		}
	}
	p := precondition{present: true, versions: []uint64{4}}
	if p.matches(3) || !p.matches(4) || !(precondition{}).matches(9) {
		t.Error("matches")
	}
}

// decodeKinds are the request bodies FuzzDecode decodes.
const (
	kindCreate byte = iota
	kindTargets
	kindTarget
	kindPatch
	kindDrain
	kindRoute
	kindCount
)

// decodeAs decodes data strictly as a body of type T.
func decodeAs[T any](data []byte, optional bool) (T, error) {
	var v T
	err := newCodec(reflect.TypeFor[T]()).decodeBody(data, optional, &v)
	return v, err
}

// decodeAny decodes data as the body of kind. It returns the decoded
// value and its encoding as a body of the same kind.
func decodeAny(kind byte, data []byte) ([]byte, any, error) {
	var v any
	var err error
	switch kind % kindCount {
	case kindCreate:
		v, err = decodeAs[newUpstream](data, false)
	case kindTargets:
		v, err = decodeAs[targetList](data, false)
	case kindTarget:
		v, err = decodeAs[targetInput](data, false)
	case kindPatch:
		v, err = decodeAs[targetPatch](data, false)
	case kindDrain:
		v, err = decodeAs[drainOptions](data, true)
	case kindRoute:
		v, err = decodeAs[routeEnabled](data, false)
	}
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(v)
	return out, v, err
}

// checkTarget checks a decoded target.
func checkTarget(t *testing.T, tg targetInput) {
	if err := validateAddress(string(tg.Address), "address"); err != nil {
		t.Fatalf("decoded an invalid address %q", tg.Address)
	}
	if err := registry.ValidateTarget(tg.target()); err != nil || tg.Weight < 1 {
		t.Fatalf("the registry refuses a decoded target %+v: %v", tg, err)
	}
}

func FuzzDecode(f *testing.F) {
	seeds := []struct {
		kind byte
		body string
	}{
		{kindCreate, `{"id":"api-1","targets":[{"address":"10.0.0.1:8080","weight":2},{"address":"[::1]:81"}]}`},
		{kindCreate, `{"id":"x"}`},
		{kindCreate, `{"id":"x","targets":[{"address":"a:1","address":"b:2"}]}`},
		{kindTargets, `{"targets":[{"address":"svc.internal:443"}]}`},
		{kindTargets, `{"targets":[]} `},
		{kindTargets, `{"targets":[{"address":"a:1"},{"address":"a:1"}]}`},
		{kindTarget, `{"address":"10.0.0.9:8080","weight":1048576}`},
		{kindTarget, `{"address":"10.0.0.9:8080","weight":1e3}`},
		{kindPatch, `{"weight":5}`},
		{kindPatch, `{"state":"draining","weight":1}`},
		{kindPatch, `{"state":"drained"}`},
		{kindDrain, ``},
		{kindDrain, `{"timeout_secs":604800}`},
		{kindDrain, `{"timeout_secs":-1}`},
		{kindRoute, `{"enabled":false}`},
		{kindRoute, `{"enabled":true}{}`},
		{kindRoute, `{"enabled":null}`},
		{kindRoute, "\ufeff{\"enabled\":true}"},
	}
	for _, s := range seeds {
		f.Add(s.kind, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		out, v, err := decodeAny(kind, data)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.message == "" {
				t.Fatalf("error %T %v is not a 400 apiError", err, err)
			}
			return
		}
		switch v := v.(type) {
		case newUpstream:
			if validateID(string(v.ID), "id") != nil {
				t.Fatalf("decoded an invalid id %q", v.ID)
			}
			for _, tg := range v.Targets {
				checkTarget(t, tg)
			}
		case targetList:
			for _, tg := range v.Targets {
				checkTarget(t, tg)
			}
		case targetInput:
			checkTarget(t, v)
		case targetPatch:
			if v.Weight == nil && v.State == nil || v.Weight != nil && (*v.Weight < 1 || *v.Weight > maxWeight) ||
				v.State != nil && *v.State != registry.StateActive && *v.State != registry.StateDraining {
				t.Fatalf("decoded an invalid patch %s", out)
			}
		}
		// The decoded value, encoded again, decodes to the same value.
		out2, v2, err := decodeAny(kind, out)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if !bytes.Equal(out, out2) || !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip: %s became %s", out, out2)
		}
	})
}

// nested is a request type for the codec's tests.
type nested struct {
	Inner *struct {
		Name  string `json:"name" api:"required" enum:"a,b,c"`
		Count int8   `json:"count" default:"3"`
		List  []bool `json:"list"`
	} `json:"inner"`
	One    string `json:"one" enum:"x"`
	hidden int
	Skip   string `json:"-"`
	Plain  bool
}

func TestCodecGeneric(t *testing.T) {
	tests := []struct{ body, msg, field string }{
		{`{"inner":{}}`, "inner.name is required", "inner.name"},
		{`{"inner":{"name":"d"}}`, `inner.name must be "a", "b" or "c"`, "inner.name"},
		{`{"one":"y"}`, `one must be "x"`, "one"},
		{`{"inner":{"name":"a","count":128}}`, "inner.count must be an integer from -128 to 127", "inner.count"},
		{`{"inner":{"name":"a","list":[true,1]}}`, "inner.list[1] must be true or false", "inner.list[1]"},
		{`{"Skip":"x"}`, `unknown field "Skip"`, "Skip"},
		{`{"hidden":1}`, `unknown field "hidden"`, "hidden"},
		{`{"plain":true}`, `unknown field "plain"`, "plain"},
	}
	for _, tt := range tests {
		_, err := decodeAs[nested]([]byte(tt.body), false)
		ae := toAPIError(err)
		if ae.status != 400 || ae.message != tt.msg || ae.field != tt.field {
			t.Errorf("%s: %+v", tt.body, ae)
		}
	}
	v, err := decodeAs[nested]([]byte(`{"inner":{"name":"b"},"Plain":true}`), false)
	if err != nil || v.Inner.Count != 3 || v.Inner.List == nil || !v.Plain {
		t.Errorf("%+v %v", v, err)
	}
	if v, err := decodeAs[drainOptions]([]byte(" \n"), true); err != nil || v.TimeoutSecs != 0 {
		t.Errorf("optional body: %+v %v", v, err)
	}
}

func TestCodecRefusesBadTypes(t *testing.T) {
	for name, typ := range map[string]reflect.Type{
		"map":   reflect.TypeFor[struct{ M map[string]int }](),
		"float": reflect.TypeFor[struct{ F float64 }](),
		"bad min": reflect.TypeFor[struct {
			N int `min:"x"`
		}](),
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "controlapi: request type") {
					t.Errorf("%s: %v", name, r)
				}
			}()
			newCodec(typ)
		}()
	}
}
