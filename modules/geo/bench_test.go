package geo

import (
	"net/netip"
	"testing"
)

// BenchmarkLookup measures one country lookup in a small database
// (the tree depth, not the file size, decides the cost).
func BenchmarkLookup(b *testing.B) {
	path := writeDB(b, b.TempDir(), "geo.mmdb", testNetworks)
	db, err := openDatabase(path, -1, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.release()
	ip := netip.MustParseAddr("81.2.69.142")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.country(ip); err != nil {
			b.Fatal(err)
		}
	}
}
