package kdladapter

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
)

// fillValue sets every settable field reachable from v to a value that
// is not empty (strings, numbers, durations, slices and maps of one
// element, pointers to filled values); depth bounds recursive types.
func fillValue(t *testing.T, v reflect.Value, depth int) {
	t.Helper()
	if depth > 6 {
		return
	}
	switch {
	case v.Type() == durationType:
		v.SetInt(int64(1500 * time.Millisecond))
		return
	case v.Type() == rawMessageType:
		v.SetBytes([]byte(`{"k":1}`))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x\"<y>")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.25)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillValue(t, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fillValue(t, v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillValue(t, s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fillValue(t, k, depth+1)
		e := reflect.New(v.Type().Elem()).Elem()
		fillValue(t, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface, reflect.Func, reflect.Chan, reflect.Array:
		// Left nil: not settings (json:"-" or none in the transport).
	default:
		t.Fatalf("cannot fill %s", v.Type())
	}
}

// transportCases are transports to write: the zero one ("zero"), one
// with every setting set ("full") and each setting alone (by its field
// name).
func transportCases(t *testing.T) map[string]*adaptive.Transport {
	t.Helper()
	cases := map[string]*adaptive.Transport{"zero": {}}
	full := &adaptive.Transport{}
	fillValue(t, reflect.ValueOf(&full.HTTPTransport).Elem(), 0)
	cases["full"] = full
	ht := reflect.ValueOf(full.HTTPTransport)
	for i := range ht.NumField() {
		if f := ht.Type().Field(i); f.IsExported() {
			one := &adaptive.Transport{}
			reflect.ValueOf(&one.HTTPTransport).Elem().Field(i).Set(ht.Field(i))
			cases[f.Name] = one
		}
	}
	return cases
}

// TestTransportJSONSameAsTree checks that the typed writer of an
// upstream's transport (transportJSON) writes what typedTree and the
// encoder wrote: for the zero transport, one with every setting set,
// and ones with each pointer setting alone.
func TestTransportJSONSameAsTree(t *testing.T) {
	for name, tr := range transportCases(t) {
		tree := typedTree(tr)
		tree[transportInlineKey] = transportModule
		want := string(encode(nil, tree))
		if name == "full" && len(want) < 500 {
			t.Errorf("the filled transport writes only %s", want)
		}
		if got := string(transportJSON.raw(tr)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// TestLoadBalancingJSONSameAsTree checks that a route's load_balancing
// as loadBalancingJSON.obj makes it encodes as typedTree's did, also
// with a member added afterwards (the selection policy).
func TestLoadBalancingJSONSameAsTree(t *testing.T) {
	full := &reverseproxy.LoadBalancing{}
	fillValue(t, reflect.ValueOf(full).Elem(), 0)
	cases := map[string]*reverseproxy.LoadBalancing{"zero": {}, "full": full, "retries": {Retries: 1, RetryMatchRaw: retryMatch(idempotent, []int64{502, 503})}}
	for name, lb := range cases {
		tree, typed := typedTree(lb), loadBalancingJSON.obj(lb)
		if name == "full" && len(typed) < 4 {
			t.Errorf("the filled load_balancing has only %d members", len(typed))
		}
		for _, o := range []obj{tree, typed} {
			o[selectionKey] = obj{policyInlineKey: "random"}
		}
		if got, want := string(encode(nil, typed)), string(encode(nil, tree)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// TestSourceJSONSameAsObj checks appendSourceJSON against the encoder's
// output of the obj it replaces.
func TestSourceJSONSameAsObj(t *testing.T) {
	for _, id := range []string{"u0", `a"b\\c<>&`, "é\u2028"} {
		want := string(encode(nil, obj{sourceInlineKey: sourceModule, sourceUpstreamKey: id}))
		if got := string(appendSourceJSON(nil, id)); got != want {
			t.Errorf("%q: got %s, want %s", id, got, want)
		}
	}
}

// TestAppSizeHint checks that the sentinel app of a generated
// configuration fits the hint, without much to spare (the buffer is
// kept as the app's fragment).
func TestAppSizeHint(t *testing.T) {
	f, _, err := adaptFlat(&loader{lookupEnv: noEnv, files: OSFiles{}, max: 1 << 30}, "gen.kdl", generatedConfig(2000))
	if err != nil {
		t.Fatal(err)
	}
	// The app is the output's largest part.
	var app []byte
	for _, p := range f.parts {
		if len(p.raw) > len(app) {
			app = p.raw
		}
	}
	t.Logf("app: %d bytes, capacity %d", len(app), cap(app))
	if !bytes.Contains(app, []byte(`"id":"u1999"`)) {
		t.Fatalf("the largest part is not the sentinel app: %.200s", app)
	}
	if cap(app) > len(app)+len(app)/8 {
		t.Errorf("app of %d bytes in a buffer of %d", len(app), cap(app))
	}
}

// TestRepeatedSettingsSmallAndLargeBlocks checks repeated settings
// through the lists (blocks of up to 16 settings) and the maps (larger
// blocks) of checkBlock and readAll: each repetition's warning names the
// line of the one before it, as the map alone did, and the first one is
// used.
func TestRepeatedSettingsSmallAndLargeBlocks(t *testing.T) {
	for _, n := range []int{3, 20} {
		var b strings.Builder
		b.WriteString("system {\n")
		for i := range n {
			fmt.Fprintf(&b, "    graceful-shutdown-timeout-secs %d\n", i+1)
		}
		b.WriteString("}\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\n")
		_, warns, err := Adapt("test.kdl", []byte(b.String()), noEnv, OSFiles{})
		if err != nil {
			t.Fatal(err)
		}
		text := warningsText(warns)
		if got := strings.Count(text, "repeated; the first one"); got != n-1 {
			t.Errorf("%d settings: %d warnings, want %d:\n%s", n, got, n-1, text)
		}
		for line := 3; line <= n+1; line++ {
			if want := fmt.Sprintf("test.kdl:%d (system.graceful-shutdown-timeout-secs): repeated; the first one (line %d) is used", line, line-1); !strings.Contains(text, want) {
				t.Errorf("%d settings: no %q in\n%s", n, want, text)
			}
		}

		// A typed block (readAll, the route's policies): the first one
		// is used.
		var ts strings.Builder
		for i := range n {
			fmt.Fprintf(&ts, "            timeout-secs %d\n", 30+i)
		}
		src := strings.Replace(string(generatedConfig(1)), "            timeout-secs 30\n", ts.String(), 1)
		out, warns, err := Adapt("gen.kdl", []byte(src), noEnv, OSFiles{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), `"timeout":"30s"`) || strings.Count(warningsText(warns), "repeated; the first one") != n-1 {
			t.Errorf("%d timeout-secs: not the first one used, or not %d warnings:\n%s", n, n-1, warningsText(warns))
		}
	}
}
