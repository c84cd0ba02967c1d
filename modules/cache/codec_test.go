package cache

import (
	"reflect"
	"testing"
	"time"
)

// TestCodecRoundTrip: an entry and its key survive encodeEntry and
// decodeEntry; every truncation and a wrong version are errors, never a
// panic or a partial entry.
func TestCodecRoundTrip(t *testing.T) {
	e := &Entry{
		Status: 203, Header: map[string][]string{"Content-Type": {"text/plain"}, "X-Two": {"a", "b"}, "X-Empty": {""}},
		Body: []byte("hello"), Stored: time.Unix(1700000000, 123), InitialAge: 3 * time.Second,
		Lifetime: time.Minute, SWR: -time.Second, SIE: 5 * time.Minute,
	}
	b := encodeEntry("GET http://h/p?q=1", e)
	k, got, err := decodeEntry(b)
	if err != nil || k != "GET http://h/p?q=1" || !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: %q %+v %v\nwant %+v", k, got, err, e)
	}
	marker := &Entry{Vary: []string{"Accept", "Accept-Language"}, Stored: time.Unix(1, 0), Lifetime: time.Hour}
	if _, got, err := decodeEntry(encodeEntry("k", marker)); err != nil || !reflect.DeepEqual(got.Vary, marker.Vary) || got.Header != nil || len(got.Body) != 0 {
		t.Fatalf("marker: %+v %v", got, err)
	}
	for i := range len(b) {
		if _, e, err := decodeEntry(b[:i]); err == nil || e != nil {
			t.Fatalf("truncated to %d bytes: decoded", i)
		}
	}
	if _, _, err := decodeEntry(append(append([]byte{}, b...), 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	bad := append([]byte{}, b...)
	bad[0] = 9
	if _, _, err := decodeEntry(bad); err == nil {
		t.Fatal("another version accepted")
	}
}

// BenchmarkCodecDecode: the cost of decoding a hit's entry
// (go test ./modules/cache -run '^$' -bench Decode -benchmem).
func BenchmarkCodecDecode(b *testing.B) {
	e := freshEntry(string(make([]byte, 4096)))
	e.Header.Set("Etag", `"abc"`)
	enc := encodeEntry("GET http://h/p", e)
	gobEnc, _ := marshalEntry("GET http://h/p", e)
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := decodeEntry(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gob", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := unmarshalEntry(gobEnc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
