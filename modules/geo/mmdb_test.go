package geo

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// testNetworks are the networks of the test databases and their
// countries ("" for a record without a country; "reg:XX" for one with
// only a registered country).
var testNetworks = map[string]string{
	"81.2.69.0/24":     "GB",
	"89.160.20.0/24":   "SE",
	"2.125.160.0/24":   "US",
	"216.160.83.0/24":  "US",
	"175.16.199.0/24":  "CN",
	"202.196.224.0/24": "reg:PH",
	"192.0.2.0/24":     "", // documentation range: found, no country
	"127.0.0.0/8":      "DE",
	"2001:db8::/32":    "FR",
}

// writeDB writes a MaxMind database of networks (see testNetworks) to a
// new file in dir and returns its path.
func writeDB(t testing.TB, dir, name string, networks map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		Description:             map[string]string{"en": "Sentinel test database"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, cc := range networks {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}}
		switch {
		case len(cc) == 6 && cc[:4] == "reg:":
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(cc[4:])}
		case cc != "":
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(cc), "names": mmdbtype.Map{"en": mmdbtype.String("x")}}
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Renamed into place, as database updaters do.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}
