package registry

import "testing"

// TestValidateQualifiedID: ids made outside the config may be qualified
// by a namespace and a service, as the KDL adapter qualifies them.
func TestValidateQualifiedID(t *testing.T) {
	for _, id := range []string{"api", "team-a:api", "team-a:billing:db", "-ns_1.x:api", "a:b.c-d"} {
		if err := ValidateID(id); err != nil {
			t.Errorf("%q refused: %v", id, err)
		}
	}
	for _, id := range []string{":api", "team-a:", "team-a::api", "a:b:c:d", "team a:api", "team-a:-api", "team-a:a b", "t/x:api", ":"} {
		if ValidateID(id) == nil {
			t.Errorf("%q accepted", id)
		}
	}
	if NamespaceOf("team-a:billing:db") != "team-a" || !InNamespace("team-a:x", "team-a") || InNamespace("team-ab:x", "team-a") || !InNamespace("x", "") {
		t.Error("NamespaceOf/InNamespace")
	}
}
